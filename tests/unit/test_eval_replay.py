"""bench/eval_answers.py replays a run with a smaller FAQ_JUDGE_DOUBT: an answer made in
doubt further under its bar than the new margin becomes the hand-off; nothing else moves."""

from __future__ import annotations

from bench.eval_answers import Row, score, with_less_doubt


def _row(kind: str, text: str, doubt: bool, lead: float) -> Row:
    judged = [{"p": 0.55 + lead, "threshold": 0.55}, {"p": 0.1, "threshold": 0.65}]
    return Row(
        "hotel",
        42,
        "q",
        kind,
        ["8元"],
        text=text,
        outcome="generated",
        detail={"doubt": doubt, "judged": judged},
    )


def test_answers_in_doubt_beyond_the_margin_become_hand_offs() -> None:
    rows = [
        _row("in", "顺丰加8元", doubt=True, lead=-0.15),  # right, made deep in doubt
        _row("in", "顺丰加8元", doubt=True, lead=-0.05),  # right, a little under the bar
        _row("out", "周末营业", doubt=True, lead=-0.12),  # an unanswerable one answered
        _row("in", "顺丰加8元", doubt=False, lead=0.1),  # sure: never touched
    ]
    assert score(with_less_doubt(rows, 0.25))["right"] == 3
    narrower = with_less_doubt(rows, 0.1)
    assert [r.outcome for r in narrower] == ["refused", "generated", "refused", "generated"]
    assert score(narrower)["right"] == 2 and score(narrower)["declined_out"] == 1
    assert score(with_less_doubt(rows, 0.0))["right"] == 1
