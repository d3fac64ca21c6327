"""The one passage the model answers from: the one the judge is surest answers the question.

Asked to pick among four passages, a small model says "资料中没有" when the first one holds
the answer, or copies a sentence of a passage beside the question (bench/RESULTS.md). So
the model first judges (app/faq/judge.py) the few passages most likely to answer: the
near FAQ entry, the best retrieved passage, and the best document passage (an FAQ entry
outranks a document's passage, which may answer a detail the FAQ does not have); then it
answers from the winner alone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from app.faq.judge import FaqJudge
from app.faq.matching import Match
from app.faq.table import Evidence, FaqEntry
from app.pipeline.memory import Turn
from app.pipeline.prompts import format_passage

#: A passage that is no near FAQ entry must convince the judge by this much more.
FAR_MARGIN = 0.1
#: Passages searched for the best document passage to judge (FAQ entries outrank them).
DOCUMENT_SEARCH = 8


def judged_passage(
    judge: FaqJudge, question: str, match: Match | None, hits: Sequence[Any], turns: Sequence[Turn]
) -> tuple[Any | None, list[dict[str, Any]]]:
    """The passage the judge is surest answers the question (or None), and each
    judgement: the near FAQ entry, the best retrieved passage, the best document's."""
    candidates: list[tuple[Any, float]] = []
    if match is not None and match.verdict == "near":
        candidates.append((match.entry, judge.threshold))
    document = next((h for h in hits if getattr(h, "kind", "") == "text"), None)
    for hit in [*hits[:1], document]:
        seen = {getattr(c, "chunk_id", None) for c, _ in candidates}
        if hit is not None and getattr(hit, "chunk_id", None) not in seen:
            candidates.append((hit, judge.threshold + FAR_MARGIN))
    # A follow-up ("那空气炸锅呢？") is judged with the question before it.
    asked = f"{turns[-1].question} {question}" if turns else question
    judged: list[dict[str, Any]] = []
    best: tuple[float, Any] | None = None
    for candidate, threshold in candidates:
        t0 = time.perf_counter()
        _, p = judge.answers(asked, format_passage(candidate))
        judged.append(
            {
                "passage": getattr(candidate, "chunk_id", ""),
                "p": round(p, 3),
                "threshold": round(threshold, 3),
                "ms": round((time.perf_counter() - t0) * 1000, 1),
            }
        )
        # The one the judge is surest of, by its lead over its bar: the nearest entry by
        # its questions is not always the one that answers ("七天无理由退货的运费谁出？"
        # is nearest to "支持七天无理由退货吗？").
        if p >= threshold and (best is None or p - threshold > best[0]):
            best = (p - threshold, candidate)
    return (best[1] if best else None), judged


def as_entry(passage: Any, match: Match | None) -> Match | None:
    """A judged passage as an FAQ match (for its stored answer), or None for a document's."""
    if match is not None and passage is match.entry:
        return match
    meta = getattr(passage, "metadata", None) or {}
    if not (meta.get("question") and meta.get("answer")):
        return None
    entry = FaqEntry(
        chunk_id=str(getattr(passage, "chunk_id", "")),
        question=str(meta["question"]).strip(),
        answer=str(meta["answer"]).strip(),
        variants=(str(meta["question"]).strip(),),
        category=str(getattr(passage, "category", "")),
        source=str(getattr(passage, "source", "")),
        section=str(getattr(passage, "section", "")),
        metadata=dict(meta),
    )
    similarity = getattr(passage, "similarity", None) or 0.0
    return Match(Evidence(entry, getattr(passage, "match", None) or 0.0, 0.0, similarity), "near")
