"""Looking passages up for a person: the staff console's hit testing and `flask kb search`,
and the preview of the chunks a document was split into.

The store's search (app/knowledge/search.py: dense, BM25 or hybrid) with an optional score
threshold, and a hit as the console's JSON shows it. The preview reads a document's chunks
as they are stored, a page at a time, whether the document is switched on or off.
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


#: Chunks one preview page holds at most.
MAX_CHUNK_PAGE = 100


def chunk_page(
    store: KnowledgeStore, doc_id: str, *, offset: int = 0, limit: int = 20
) -> tuple[int, list[dict[str, Any]]]:
    """How many chunks the document has, and ``limit`` of them from ``offset`` in reading
    order, as the preview shows them (an FAQ spreadsheet: one per entry)."""
    total, rows = store.chunk_page(doc_id, offset, min(limit, MAX_CHUNK_PAGE))
    return total, [chunk_dict(row) for row in rows]


def chunk_dict(row: dict[str, Any]) -> dict[str, Any]:
    meta = row.get("metadata") or {}
    meta = meta if isinstance(meta, dict) else {}
    out: dict[str, Any] = {
        "chunk_id": str(row.get("chunk_id", "")),
        "position": int(row.get("position", 0) or 0),
        "kind": str(row.get("kind", "")),
        "section": str(row.get("section", "")),
        "category": str(row.get("category", "")),
        "page": meta.get("page"),
        "text": str(row.get("text", "")),
        "chars": len(str(row.get("text", ""))),
    }
    if out["kind"] == "faq":
        out["question"] = meta.get("question", "")
        out["similar_questions"] = list(meta.get("similar_questions") or [])
        out["answer"] = meta.get("answer", "")
        out["row"] = meta.get("row")
    return out


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
