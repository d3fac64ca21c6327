"""The FAQ table: character matches decide as difflib does, and the evidence for the
nearest entry is the arithmetic the thresholds were calibrated on."""

from __future__ import annotations

import csv
import difflib
import random
from pathlib import Path

import numpy as np
import pytest

from app.faq.matching import COVERAGE, E5_THRESHOLDS, Thresholds, verdict
from app.faq.table import Evidence, FaqEntry, FaqTable, TableHolder, normalise

FAQ = Path(__file__).resolve().parents[2] / "knowledge" / "faq.csv"


def _entry(i: int, question: str, *similar: str) -> FaqEntry:
    return FaqEntry(f"c{i}", question, f"answer {i}", (question, *similar), position=i)


def _rows(entries: list[FaqEntry], vectors: dict[str, list[float]], answers: list) -> list:
    """Rows as KnowledgeStore.faq_rows returns them."""
    rows = []
    for e, answer_vector in zip(entries, answers, strict=True):
        meta = {
            "question": e.question,
            "answer": e.answer,
            "similar_questions": list(e.variants[1:]),
        }
        rows.append(
            {
                "kind": "faq",
                "doc_id": "d",
                "position": e.position,
                "chunk_id": e.chunk_id,
                "metadata": meta,
                "dense": answer_vector,
            }
        )
        for v in e.variants:
            rows.append(
                {
                    "kind": "faq_q",
                    "doc_id": "d",
                    "position": e.position,
                    "chunk_id": f"q{v}",
                    "metadata": meta,
                    "text": v,
                    "dense": vectors[v],
                }
            )
    return rows


@pytest.fixture()
def sample() -> FaqTable:
    entries = []
    with open(FAQ, encoding="utf-8") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            similar = [s for s in row["similar_questions"].split("|") if s]
            entries.append(_entry(i, row["question"], *similar))
    dim = 8
    rng = np.random.default_rng(3)
    vectors = {v: rng.normal(size=dim).tolist() for e in entries for v in e.variants}
    answers = [rng.normal(size=dim).tolist() for _ in entries]
    return FaqTable.from_rows(_rows(entries, vectors, answers))


def _reference(question: str, table: FaqTable, threshold: float) -> FaqEntry | None:
    """The plain definition: the entry with the best difflib ratio, if it reaches it."""
    q, best, best_score = normalise(question), None, 0.0
    for entry in table.entries:
        for v in entry.variants:
            score = difflib.SequenceMatcher(None, q, normalise(v)).ratio()
            if score > best_score:
                best, best_score = entry, score
    return best if best_score >= threshold else None


def test_character_matches_decide_as_difflib_over_every_entry(sample: FaqTable) -> None:
    rng = random.Random(7)
    probes = ["你好", "人工智能能帮我退货吗", "我的订单还没发货，付款后多久发货？"]
    for e in sample.entries:
        for q in e.variants:
            i = rng.randrange(len(q))
            probes += [q, q[:i] + "的" + q[i:], q[:i] + q[i + 1 :], q + "呢", "请问" + q]
    decided = {True: 0, False: 0}
    for q in probes:
        expected = _reference(q, sample, 0.9)
        got = sample.by_characters(q, 0.9)
        assert (got is None) == (expected is None), q
        if got is not None:
            assert got.answer == expected.answer, q
        decided[got is not None] += 1
    assert decided[True] > 50 and decided[False] > 50  # both kinds were exercised


def test_listed_paraphrase_with_punctuation_matches_and_another_question_does_not(
    sample: FaqTable,
) -> None:
    assert sample.by_characters("我的订单还没发货！", 0.9).question == "下单后多久发货？"
    assert sample.by_characters("我的订单还没发货，能改地址吗？", 0.9) is None


def test_evidence_is_the_nearest_question_its_lead_and_the_answer_cosine() -> None:
    a, b = _entry(0, "发货", "几时发"), _entry(1, "退货")
    vectors = {"发货": [1.0, 0.0, 0.0], "几时发": [0.6, 0.8, 0.0], "退货": [0.0, 0.0, 1.0]}
    table = FaqTable.from_rows(_rows([a, b], vectors, [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    best, second = table.evidence([0.8, 0.6, 0.0], top=2)
    assert best.entry.chunk_id == "c0"
    assert best.match == pytest.approx(0.96)  # "几时发": 0.48 + 0.48
    assert best.gap == pytest.approx(0.96)  # the other entry's question is orthogonal
    assert best.similarity == pytest.approx(0.6)
    assert best.agreement == pytest.approx(0.6)  # the other entry's answer is orthogonal
    assert second.entry.chunk_id == "c1" and second.gap == pytest.approx(-0.96)
    (only,) = table.evidence([0.8, 0.6, 0.0], top=1, without=0)
    assert only.entry.chunk_id == "c1"


def test_coverage_is_the_share_of_what_the_question_asks_that_the_entry_mentions() -> None:
    deposit = FaqEntry(
        "c0",
        "押金多久能退回来？",
        "退房后原路退回，3个工作日内到账。",
        ("押金多久能退回来？", "押金什么时候退"),
    )
    vectors = {"押金多久能退回来？": [1.0, 0.0], "押金什么时候退": [1.0, 0.0]}
    table = FaqTable.from_rows(_rows([deposit], vectors, [[1.0, 0.0]]))
    # Asking words and particles do not count; every other character does.
    assert table.coverage("请问押金什么时候能退呢？", 0) == 1.0
    detail = table.coverage("退房后押金几天到账", 0)  # 几 and 天: not said, but the rest is
    assert detail == pytest.approx(7 / 9) and detail >= COVERAGE
    assert table.coverage("押金多少钱", 0) == pytest.approx(3 / 5)  # 少 and 钱: not said
    # Who is asking and what they bought is not what they ask: a clause may stand alone.
    assert table.coverage("我上周订的大床房，押金多久能退？", 0) == 1.0
    assert table.coverage("钱，押金多少钱", 0) == pytest.approx(3 / 5)  # too short alone
    (found,) = table.evidence([1.0, 0.0], top=1, question="押金多少钱")
    assert found.coverage == pytest.approx(3 / 5)
    (found,) = table.evidence([1.0, 0.0], top=1)
    assert found.coverage == 1.0  # without the question's text: not checked


def test_verdicts() -> None:
    entry = _entry(0, "q")
    t = Thresholds(match=0.95, gap=0.02, similarity=0.87, near=0.9)
    assert verdict(Evidence(entry, 0.96, 0.03, 0.9), t) == "verbatim"
    assert verdict(Evidence(entry, 0.96, 0.01, 0.9), t) == "near"  # not clear of the next
    assert verdict(Evidence(entry, 0.96, 0.03, 0.8), t) == "near"  # far from the answer
    assert verdict(Evidence(entry, 0.85, 0.1, 0.9), t) == "none"
    # Another near entry says more about the question: only with a clear lead is it this one.
    assert verdict(Evidence(entry, 0.96, 0.02, 0.9, agreement=-0.01), t) == "near"
    assert verdict(Evidence(entry, 0.96, 0.04, 0.9, agreement=-0.01), t) == "verbatim"
    assert verdict(Evidence(entry, 0.0, 0.0, 0.0, characters=True), None) == "verbatim"
    # Near by meaning, but asking about what the entry does not mention.
    assert verdict(Evidence(entry, 0.99, 0.1, 0.99, coverage=0.5), t) == "near"
    assert verdict(Evidence(entry, 0.99, 0.1, 0.99), None) == "none"  # not calibrated


def test_thresholds_setting_round_trips_and_rejects_nonsense() -> None:
    assert Thresholds.parse(E5_THRESHOLDS.as_setting()) == E5_THRESHOLDS
    for bad in ("0.9,0.1", "a,b,c,d", "2,0,0,0"):
        with pytest.raises(ValueError):
            Thresholds.parse(bad)


def test_holder_survives_milvus_down_and_its_thread_stops_and_restarts() -> None:
    def down() -> list[dict]:
        raise ConnectionError("Milvus is down")

    holder = TableHolder(down)
    assert holder.get(wait=False) is None  # a web request never waits, never raises
    failing = holder._thread
    assert failing is not None
    holder.stop()  # even while it backs off between retries
    assert not failing.is_alive() and holder._thread is None

    up = TableHolder(lambda: [])
    table = up.get()
    assert table is not None and len(table) == 0
    up.stop()
    assert up.get() is not None  # the next use starts the refresh again
    assert up._thread is not None and up._thread.is_alive()
    up.stop()
