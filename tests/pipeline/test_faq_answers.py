"""Questions an FAQ entry answers, with the real embedder, Milvus and model: the entry's
stored answer at once when the question is the entry's, the model answering from the
entry when it asks one detail of it, the hand-off when nothing answers it; each answer
says which."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from app.pipeline.answer import REFUSAL_TEXT, AnswerPipeline

pytestmark = pytest.mark.slow

FAQ = Path(__file__).resolve().parents[2] / "knowledge" / "faq.csv"


def _stored(question: str) -> str:
    with open(FAQ, encoding="utf-8") as fh:
        return next(r["answer"].strip() for r in csv.DictReader(fh) if r["question"] == question)


def test_an_unlisted_paraphrase_gets_the_stored_answer_without_the_model(
    pipeline: AnswerPipeline,
) -> None:
    # The entry lists 能开发票吗|怎么开票|我要发票|能开发漂吗, not this.
    answer = pipeline.answer("开发票怎么弄")
    assert answer.outcome == "faq" and answer.detail["via"] == "meaning"
    assert answer.text == _stored("可以开发票吗？")
    assert answer.completion_tokens == 0
    assert answer.detail["question"] == "可以开发票吗？"
    assert answer.detail["match"] >= 0.9 and answer.sources[0]["source"] == "faq.csv"


def test_a_question_about_one_detail_is_answered_from_that_entry(
    pipeline: AnswerPipeline,
) -> None:
    # Near the express entry, not its question: the entry says SF costs 8 yuan more. (The
    # test model judges this 0.42 against its bar of 0.35 here; "想发顺丰的话要加钱吗", 0.37
    # here, was judged 0.349 on CI's machine.)
    answer = pipeline.answer("发顺丰要另外加多少钱")
    assert answer.outcome in ("generated", "faq"), answer.detail
    assert answer.detail["nearest"]["question"] == "你们用什么快递发货？"
    assert answer.detail["nearest"]["verdict"] == "near"
    assert "8元" in answer.text, (answer.text, answer.draft, answer.detail)
    if answer.outcome == "generated":
        # The model wrote it, from the passages it was given; the entry among them.
        assert answer.completion_tokens > 0
        assert any("顺丰" in p for p in answer.passages)
    else:
        # The model's own answer could not be backed; the judge said the entry answers.
        assert answer.detail["via"] == "judge"


def test_an_unrelated_question_gets_the_hand_off(pipeline: AnswerPipeline) -> None:
    answer = pipeline.answer("明天杭州会下雨吗？")
    assert answer.outcome == "refused"
    assert answer.text == REFUSAL_TEXT and answer.handoff
    assert answer.detail.get("check"), answer.detail  # which check refused it is recorded
