"""Which retrieved FAQ entries are about another question, and so back no claim.

Small models copy a passage beside the question: asked whether the appliances carry CE
marking, the 1.5B answered with the 3C sentence of the "商品是正品吗？" entry, every word
backed by it. Such an entry's questions are further from the customer's than paraphrases
usually are (the threshold and what it costs: bench/RESULTS.md). Used when the model
answers from several passages (no judge); a passage the judge chose is on topic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from app.pipeline.memory import Turn

#: With the topic check on, an FAQ entry this much further (e5 cosine) from the customer's
#: question than the nearest retrieved entry backs nothing (bench/RESULTS.md).
FAQ_NEAREST_MARGIN = 0.04

Similarity = Callable[[list[str], list[str]], Sequence[Sequence[float]]]


def off_topic(
    measure: Similarity,
    question: str,
    hits: Sequence[Any],
    turns: Sequence[Turn] = (),
    *,
    min_similarity: float,
    margin: float = FAQ_NEAREST_MARGIN,
) -> tuple[int, ...]:
    """The FAQ entries among ``hits`` none of whose questions is within ``min_similarity``
    of the customer's (a follow-up is also compared with the previous question joined to
    it). Document chunks have no question to compare and are never set aside.

    An entry is also set aside when another one is nearer by more than ``margin``: asked
    how to change the bound phone number, the 1.5B answered with the address entry (its
    paraphrase "怎么改地址" at 0.899), while the login entry lists "怎么换手机号" (0.962).
    """
    entries = {i: qs for i, h in enumerate(hits) if (qs := faq_questions(h))}
    if not entries:
        return ()
    asked = [question] + ([f"{turns[-1].question} {question}"] if turns else [])
    variants = sorted({q for qs in entries.values() for q in qs})
    rows = measure(asked, variants)
    nearest = {v: max(row[j] for row in rows) for j, v in enumerate(variants)}
    closeness = {i: max(nearest[q] for q in qs) for i, qs in entries.items()}
    floor = max(min_similarity, max(closeness.values()) - margin)
    return tuple(i for i, near in closeness.items() if near < floor)


def faq_questions(hit: Any) -> list[str]:
    """An FAQ hit's question and listed paraphrases; empty for other passages."""
    meta = getattr(hit, "metadata", None) or {}
    if not (meta.get("question") and meta.get("answer")):
        return []
    variants = [meta["question"], *(meta.get("similar_questions") or [])]
    return [str(v).strip() for v in variants if str(v).strip()]
