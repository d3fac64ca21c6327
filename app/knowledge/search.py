"""Searching the knowledge: dense, BM25 or hybrid, and what a hit is.

Separate from the collection's other jobs so that "how does a question find its passage"
has one place. A search runs Milvus' dense (cosine) and BM25 searches and hands both lists
of hits to `app.knowledge.fusion.fuse`, where the two rankings are fused and an FAQ entry's
question rows fold back into the entry; `_hit` makes a `Hit` of each fused candidate.
`question_similarity` compares questions by their embeddings alone (FAQ paraphrases).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pymilvus import MilvusClient

from app.knowledge.chunking import FAQ, FAQ_QUESTION, faq_entry_text
from app.knowledge.embedding import Embedder
from app.knowledge.fusion import Candidate, fuse
from app.knowledge.lexical import analyzed
from app.knowledge.schema import _OUTPUT_FIELDS, HiddenDocuments, both, not_hidden

SearchMode = Literal["hybrid", "dense", "bm25"]
SEARCH_MODES: tuple[str, ...] = ("hybrid", "dense", "bm25")


@dataclass(frozen=True)
class Hit:
    """One search result: a document passage or a whole FAQ entry. ``score`` is the fused
    score (hybrid), the dense score (dense) or BM25 (bm25): compare scores only within one
    mode. ``similarity`` is the query's cosine with the passage (for an FAQ entry, with its
    question and answer) and ``match`` the cosine with the nearest of an FAQ entry's
    questions, in every mode but bm25 where the search saw them."""

    chunk_id: str
    doc_id: str
    kind: str
    text: str
    score: float
    source: str
    section: str
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    category: str = ""
    position: int = 0
    similarity: float | None = None
    match: float | None = None

    @property
    def relevance(self) -> float | None:
        """The closest of the two cosines: what a caller's score threshold compares."""
        known = [v for v in (self.similarity, self.match) if v is not None]
        return max(known) if known else None


class HybridSearch:
    """Dense, BM25 and hybrid search (a part of `KnowledgeStore`)."""

    #: Set by the other parts of the store (see `KnowledgeStore.__init__`).
    embedder: Embedder
    request_timeout: int
    hidden_documents: HiddenDocuments | None

    def search(
        self,
        query: str,
        top_k: int = 5,
        *,
        category: str | None = None,
        doc_id: str | None = None,
        mode: SearchMode = "hybrid",
    ) -> list[Hit]:
        """The ``top_k`` passages and FAQ entries most relevant to ``query``, best first.

        hybrid: dense and BM25 evidence fused (app/knowledge/fusion.py); dense: embedding
        similarity only; bm25: keyword relevance only. An FAQ entry found by one of its
        questions comes back whole, once.
        """
        if mode not in SEARCH_MODES:
            raise ValueError(f"mode must be one of {', '.join(SEARCH_MODES)}, not {mode!r}")
        query = query.strip()
        if not query or top_k < 1:
            return []
        # Asked at every search, so that switching a document off or on counts at once in
        # every process; with none off the filter is the same as before.
        expr = both(self._filter(category, doc_id), not_hidden(self.hidden_documents))
        terms = analyzed(query) if mode != "dense" else ""
        query_vector: list[float] | None = None
        if mode != "bm25":
            query_vector = self.embedder.embed_queries([query])[0]
        # An entry has a row per question besides its own: ask for enough rows that
        # ``top_k`` distinct entries and passages remain after folding.
        rows = max(top_k * 8, 40)

        def run(client: MilvusClient, name: str) -> tuple[list[Any], list[Any]]:
            dense: list[Any] = []
            keyword: list[Any] = []
            if query_vector is not None:
                dense = client.search(
                    name,
                    data=[query_vector],
                    anns_field="dense",
                    filter=expr,
                    limit=rows,
                    output_fields=_OUTPUT_FIELDS,
                    search_params={"metric_type": "IP", "params": {"ef": max(64, rows)}},
                    timeout=self.request_timeout,
                )[0]
            if terms:
                # Question rows are left out: BM25 weighs an entry's words as a whole.
                entries = f'kind != "{FAQ_QUESTION}"'
                keyword = client.search(
                    name,
                    data=[terms],
                    anns_field="sparse",
                    filter=both(expr, entries),
                    limit=max(top_k * 4, 20),
                    output_fields=_OUTPUT_FIELDS,
                    search_params={"metric_type": "BM25"},
                    timeout=self.request_timeout,
                )[0]
            return list(dense), list(keyword)

        try:
            dense, keyword = self._run(run)
        except Exception as exc:
            # milvus-lite cannot score BM25 in a collection that never held a row (its
            # average document length is 0/0); nothing to find there anyway.
            if "Invalid sparse row" in str(exc) and self.count() == 0:
                return []
            raise
        ranked = fuse(dense, keyword if mode != "dense" else [], top_k)
        return [self._hit(c) for c in ranked]

    def question_similarity(
        self, questions: Sequence[str], others: Sequence[str]
    ) -> list[list[float]]:
        """Cosine similarity of each of ``questions`` with each of ``others``, all embedded
        as queries (question against question: FAQ entries and their paraphrases)."""
        if not questions or not others:
            return [[] for _ in questions]
        vectors = self.embedder.embed_queries([*questions, *others])
        asked, known = vectors[: len(questions)], vectors[len(questions) :]
        return [
            [float(sum(a * b for a, b in zip(q, k, strict=True))) for k in known] for q in asked
        ]

    def _hit(self, cand: Candidate) -> Hit:
        entity = cand.entity
        metadata = entity.get("metadata") or {}
        metadata = dict(metadata) if isinstance(metadata, dict) else {}
        kind, chunk_id, text = (
            str(entity.get("kind", "")),
            str(entity.get("chunk_id", "")),
            str(entity.get("text", "")),
        )
        if cand.from_question:
            # Only a question row came back: it carries the entry's own fields.
            kind, chunk_id = FAQ, str(metadata.pop("entry_chunk_id", chunk_id))
            text = faq_entry_text(
                str(metadata.get("question", "")),
                [str(v) for v in metadata.get("similar_questions") or []],
                str(metadata.get("answer", "")),
            )
        return Hit(
            chunk_id=chunk_id,
            doc_id=str(entity.get("doc_id", "")),
            kind=kind,
            text=text,
            score=cand.score,
            source=str(entity.get("source", "")),
            section=str(entity.get("section", "")),
            metadata=metadata,
            category=str(entity.get("category", "")),
            position=int(entity.get("position", 0) or 0),
            similarity=cand.similarity,
            match=cand.match,
        )
