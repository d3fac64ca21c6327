"""Looking passages up for a person: the staff console's hit testing and `flask kb search`.

The store's search (app/knowledge/search.py: dense, BM25 or hybrid) with an optional score
threshold, and a hit as the console's JSON shows it.
"""

from __future__ import annotations

from typing import Any

from app.knowledge.store import Hit, KnowledgeStore


def search(
    store: KnowledgeStore,
    query: str,
    *,
    top_k: int = 5,
    category: str | None = None,
    doc_id: str | None = None,
    mode: str = "hybrid",
    score_threshold: float | None = None,
) -> list[Hit]:
    """Ranked passages; with ``score_threshold``, only those whose similarity (cosine; BM25
    score in bm25 mode) reaches it."""
    hits = store.search(query, top_k, category=category, doc_id=doc_id, mode=mode)  # type: ignore[arg-type]
    if score_threshold is not None:
        hits = [
            h
            for h in hits
            if (h.relevance if h.relevance is not None else h.score) >= score_threshold
        ]
    return hits


def hit_dict(hit: Hit, rank: int) -> dict[str, Any]:
    meta = hit.metadata or {}
    out: dict[str, Any] = {
        "rank": rank,
        "score": round(hit.score, 6),
        "similarity": round(hit.relevance, 6) if hit.relevance is not None else None,
        "chunk_id": hit.chunk_id,
        "document_id": hit.doc_id,
        "source": hit.source,
        "title": meta.get("title", ""),
        "section": hit.section,
        "page": meta.get("page"),
        "position": hit.position,
        "kind": hit.kind,
        "category": hit.category,
        "text": hit.text,
    }
    if hit.kind == "faq":
        out["question"] = meta.get("question", "")
        out["answer"] = meta.get("answer", "")
        out["row"] = meta.get("row")
    return out
