"""Choosing verbatim thresholds from labelled questions: the most right answers with wrong
ones within the limit."""

from __future__ import annotations

import pytest

from app.faq.calibration import Labelled, choose, outcome
from app.faq.table import Evidence, FaqEntry

A, B = (
    FaqEntry("a", "发货？", "48小时内。", ("发货？",)),
    FaqEntry("b", "退货？", "7天。", ("退货？",)),
)


def _q(gold: set[str], entry: FaqEntry, match: float, gap: float, sim: float) -> Labelled:
    return Labelled("?", gold, Evidence(entry, match, gap, sim))


def test_the_thresholds_answer_most_while_keeping_wrong_answers_out() -> None:
    samples = [
        _q({"发货？"}, A, 0.97, 0.05, 0.90),
        _q({"发货？"}, A, 0.955, 0.04, 0.89),
        _q({"退货？"}, B, 0.93, 0.03, 0.91),
        # A near miss: as close as a paraphrase, but not clear of the next entry.
        _q(set(), A, 0.96, 0.005, 0.90),
        # Another: clear, but far from what the entry says.
        _q(set(), B, 0.965, 0.05, 0.82),
    ]
    t = choose(samples, max_wrong=0.0)
    result = outcome(samples, t)
    assert result.verbatim_wrong == 0
    assert result.verbatim_right == 3
    assert t.match <= 0.93 and t.gap > 0.005 and t.similarity > 0.82


def test_when_nothing_can_be_answered_safely_nothing_is() -> None:
    samples = [_q(set(), A, 0.99, 0.06, 0.93)]
    assert outcome(samples, choose(samples, max_wrong=0.0)).verbatim_wrong == 0
    with pytest.raises(ValueError):
        choose([Labelled("?", set())])  # no evidence at all: nothing to calibrate on
