"""bench/unanswered_grouping.py's scorer on hand-made groups whose figures are counted by
hand: groups shown, questions in a wrong group, pairwise precision and recall, merged and
split groups; and its data set's shape."""

from __future__ import annotations

import pytest

from bench import unanswered_grouping as bench

TRUTH = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "b2": "B", "c1": "C"}


def test_the_true_grouping_scores_perfectly() -> None:
    s = bench.score([["a1", "a2", "a3"], ["b1", "b2"], ["c1"]], TRUTH)
    assert (s.shown_groups, s.true_groups, s.wrong) == (3, 3, 0)
    assert (s.precision, s.recall, s.merged, s.split) == (1.0, 1.0, 0, 0)


def test_a_merge_and_a_split_counted_by_hand() -> None:
    # {a1 a2 b1}: majority A, b1 wrong. {a3}: A, right. {b2 c1}: a tie, the title's (B)
    # wins, c1 wrong. Together: a1-a2, a1-b1, a2-b1, b2-c1 (4 pairs), of which a1-a2 truly
    # belongs together. Truly together: a1-a2, a1-a3, a2-a3, b1-b2 (4), one shown together.
    s = bench.score([["a1", "a2", "b1"], ["a3"], ["b2", "c1"]], TRUTH)
    assert (s.shown_groups, s.true_groups, s.wrong) == (3, 3, 2)
    assert s.precision == pytest.approx(1 / 4)
    assert s.recall == pytest.approx(1 / 4)
    assert (s.merged, s.split) == (2, 2)


def test_a_tie_goes_to_the_title_s_group() -> None:
    assert bench.score([["c1", "a1"], ["a2", "a3"], ["b1", "b2"]], TRUTH).wrong == 1
    assert bench.score([["a1", "c1"], ["a2", "a3"], ["b1", "b2"]], TRUTH).wrong == 1


def test_every_question_must_be_shown_once() -> None:
    with pytest.raises(ValueError):
        bench.score([["a1", "a2", "a3"], ["b1", "b2"]], TRUTH)
    with pytest.raises(ValueError):
        bench.score([["a1", "a2", "a3", "a1"], ["b1", "b2"], ["c1"]], TRUTH)


def test_the_set_has_at_least_100_questions_in_groups_of_1_to_8() -> None:
    rows = bench.load()
    assert len(rows) >= 100
    assert len({q for q, _ in rows}) == len(rows)
    sizes: dict[str, int] = {}
    for _, g in rows:
        sizes[g] = sizes.get(g, 0) + 1
    assert len(sizes) >= 25
    assert min(sizes.values()) >= 1 and max(sizes.values()) <= 8
