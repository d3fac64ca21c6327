"""Hybrid ranking: dense and BM25 candidates, folded per FAQ entry, fused by score.

An FAQ entry is stored as one entry row (its question and answer, embedded as a passage)
and one row per question (the question and each listed paraphrase, embedded as queries).
Its dense evidence is the nearest of its questions (``match``: question against
question, where a paraphrase scores 0.93-0.99) and the entry row's cosine (``similarity``:
how close the question is to what the entry says, which finds a question about one
detail of the answer); a document passage has only the latter.

The two searches are fused by score, not by rank: reciprocal-rank fusion gave up hit@1
against dense alone on real paraphrases (0.31 against 0.37 on the chatopera set), because
a weak BM25 rank pulled the right entry down as often as a strong one lifted it. Here
BM25 only adds, scaled to the best BM25 score of the query, ``BM25_WEIGHT`` at most
(bench/RESULTS.md, "Retrieval", for how the weights were chosen).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from app.knowledge.chunking import FAQ, FAQ_QUESTION

#: The entry row's cosine counts half as much as the nearest question's.
ENTRY_WEIGHT = 0.5
#: The most that BM25 adds to a dense score (the query's best BM25 hit adds all of it).
BM25_WEIGHT = 0.1


@dataclass
class Candidate:
    """One entry or passage and its evidence from both searches."""

    key: str
    entity: dict[str, Any]
    #: The entity came from one of the entry's question rows, not the entry row itself.
    from_question: bool = False
    similarity: float | None = None  # cosine with the entry row or passage
    match: float | None = None  # nearest question of an FAQ entry (cosine)
    bm25: float | None = None
    score: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_faq(self) -> bool:
        return self.entity.get("kind") in (FAQ, FAQ_QUESTION)


def key_of(entity: dict[str, Any]) -> str:
    """Rows of one FAQ entry share a key (its document and position); a passage is its own."""
    if entity.get("kind") in (FAQ, FAQ_QUESTION):
        return f"faq\x1f{entity.get('doc_id', '')}\x1f{entity.get('position', 0)}"
    return f"chunk\x1f{entity.get('chunk_id', '')}"


def _fold(candidates: dict[str, Candidate], hit: dict[str, Any], *, dense: bool) -> None:
    entity = hit.get("entity") or {}
    key = key_of(entity)
    value = float(hit.get("distance", 0.0))
    is_question = entity.get("kind") == FAQ_QUESTION
    cand = candidates.get(key)
    if cand is None:
        cand = candidates[key] = Candidate(key, entity, from_question=is_question)
    elif cand.from_question and not is_question:
        cand.entity, cand.from_question = entity, False  # the entry row says it all
    if not dense:
        cand.bm25 = max(cand.bm25 or 0.0, abs(value))
    elif is_question:
        cand.match = value if cand.match is None else max(cand.match, value)
    else:
        cand.similarity = value if cand.similarity is None else max(cand.similarity, value)


def dense_score(cand: Candidate, floor: float) -> float:
    """An entry's dense evidence on a passage's scale; what a search did not return counts
    as ``floor`` (the lowest cosine it did return)."""
    similarity = cand.similarity if cand.similarity is not None else floor
    if not cand.is_faq:
        return similarity
    match = cand.match if cand.match is not None else floor
    return (match + ENTRY_WEIGHT * similarity) / (1 + ENTRY_WEIGHT)


def fuse(
    dense: Sequence[dict[str, Any]],
    keyword: Sequence[dict[str, Any]],
    limit: int,
    *,
    bm25_weight: float = BM25_WEIGHT,
) -> list[Candidate]:
    """The ``limit`` best entries and passages of two searches' raw hits, best first."""
    candidates: dict[str, Candidate] = {}
    for hit in dense:
        _fold(candidates, hit, dense=True)
    for hit in keyword:
        _fold(candidates, hit, dense=False)
    cosines = [float(h.get("distance", 0.0)) for h in dense]
    floor = min(cosines) if cosines else 0.0
    top_bm25 = max((c.bm25 or 0.0 for c in candidates.values()), default=0.0)
    for cand in candidates.values():
        lexical = (cand.bm25 or 0.0) / top_bm25 if top_bm25 > 0 else 0.0
        cand.score = (dense_score(cand, floor) if dense else 0.0) + bm25_weight * lexical
        if not dense:  # BM25 alone: its own scale
            cand.score = cand.bm25 or 0.0
    ranked = sorted(candidates.values(), key=lambda c: c.score, reverse=True)
    return ranked[:limit]
