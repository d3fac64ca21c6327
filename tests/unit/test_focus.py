"""Which passage the model answers from, given the judge's probabilities: sure above a
passage's bar, in doubt a little under it, nothing further down."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.faq.judge import FaqJudge
from app.faq.matching import Match
from app.faq.table import Evidence, FaqEntry
from app.pipeline.focus import judged_passage

EXPRESS = FaqEntry(
    "faq-1",
    "你们用什么快递发货？",
    "默认中通，顺丰需加8元。",
    ("用什么快递",),
    metadata={"question": "你们用什么快递发货？", "answer": "默认中通，顺丰需加8元。"},
)


@dataclass
class Hit:
    chunk_id: str
    text: str
    kind: str = "text"
    source: str = "shop.md"
    metadata: dict = field(default_factory=dict)


class Scripted:
    """A judging model whose "能" probability is set per passage."""

    def __init__(self, yes: dict[str, float]) -> None:
        self.yes = yes

    def choose(self, messages, choices, *, answer_prefix="", deadline_s=None):  # noqa: ANN001, ANN201
        prompt = messages[-1]["content"]
        p = next((v for k, v in self.yes.items() if k in prompt), 0.0)
        return [p, 1 - p, 0.0]


def _near() -> Match:
    return Match(Evidence(EXPRESS, 0.94, 0.04, 0.88), "near")


def _focus(yes: dict[str, float], doubt: float):  # noqa: ANN202
    judge = FaqJudge(Scripted(yes), threshold=0.55, doubt=doubt)  # type: ignore[arg-type]
    return judged_passage(judge, "想发顺丰的话要加钱吗", _near(), [EXPRESS], [])


def test_a_passage_over_its_bar_is_answered_from_without_doubt() -> None:
    focus = _focus({"中通": 0.6}, doubt=0.1)
    assert focus.passage is EXPRESS and not focus.doubt
    assert focus.judged[0]["p"] == 0.6 and focus.judged[0]["threshold"] == 0.55


def test_a_passage_a_little_under_its_bar_is_answered_from_in_doubt() -> None:
    focus = _focus({"中通": 0.5}, doubt=0.1)
    assert focus.passage is EXPRESS and focus.doubt


def test_further_under_or_without_a_margin_nothing_is_answered_from() -> None:
    assert _focus({"中通": 0.4}, doubt=0.1).passage is None
    assert _focus({"中通": 0.5}, doubt=0.0).passage is None


def test_a_passage_over_its_bar_wins_over_one_in_doubt() -> None:
    hours = Hit("doc-2", "门店营业时间为每天9点到18点，周末照常营业。")
    judge = FaqJudge(Scripted({"中通": 0.5, "营业": 0.7}), threshold=0.55, doubt=0.1)  # type: ignore[arg-type]
    focus = judged_passage(judge, "想发顺丰的话要加钱吗", _near(), [EXPRESS, hours], [])
    # The document passage's bar is 0.65 (FAR_MARGIN): 0.7 clears it; 0.5 is under 0.55.
    assert focus.passage is hours and not focus.doubt
