"""The web process's in-memory FAQ match decides exactly as the pipeline's faq_match
over every FAQ entry, on the sample knowledge's questions, paraphrases and near misses."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from app.pipeline.answer import faq_match
from app.services import instant_faq
from app.settings import load_settings

FAQ = Path(__file__).resolve().parents[2] / "knowledge" / "faq.csv"


@pytest.fixture()
def table(monkeypatch: pytest.MonkeyPatch) -> list[instant_faq._Entry]:
    table, entries = instant_faq._Table(), []
    with open(FAQ, encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            similar = [s for s in row["similar_questions"].split("|") if s]
            meta = {
                "question": row["question"],
                "answer": row["answer"],
                "similar_questions": similar,
            }
            entry = instant_faq._Entry(meta, "faq.csv", row["category"])
            for variant in [row["question"], *similar]:
                table.add(instant_faq._norm(variant), entry)
            table.size += 1
            entries.append(entry)
    monkeypatch.setattr(instant_faq, "_table", table)
    return entries


def _probes(entries: list[instant_faq._Entry]) -> list[str]:
    rng = random.Random(7)
    out = ["你好", "人工智能能帮我退货吗", "我的订单还没发货，付款后多久发货？"]
    for e in entries:
        for q in [e.metadata["question"], *e.metadata["similar_questions"]]:
            i = rng.randrange(len(q))
            out += [q, q[:i] + "的" + q[i:], q[:i] + q[i + 1 :], q + "呢", "请问" + q]
    return out


def test_same_decisions_as_faq_match_over_every_entry(table: list) -> None:
    settings = load_settings(faq_direct_threshold=0.9)
    decided = {True: 0, False: 0}
    for q in _probes(table):
        expected = faq_match(q, table, 0.9)
        got = instant_faq.lookup(q, settings)
        assert (got is None) == (expected is None), q
        if got is not None:
            assert got.text == expected.metadata["answer"].strip(), q
        decided[got is not None] += 1
    assert decided[True] > 50 and decided[False] > 50  # both kinds were exercised


def test_off_or_empty_answers_nothing(table: list, monkeypatch: pytest.MonkeyPatch) -> None:
    assert instant_faq.lookup("可以开发票吗？", load_settings(wechat_instant_faq=False)) is None
    monkeypatch.setattr(instant_faq, "_table", instant_faq._Table())
    assert instant_faq.lookup("可以开发票吗？", load_settings()) is None
