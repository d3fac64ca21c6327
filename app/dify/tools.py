"""The use cases behind the tool API that Dify imports: search, FAQ, OCR, answer, hand-off."""

from __future__ import annotations

import time
from typing import Any

from app import resources
from app.dify import fetch
from app.extensions import db
from app.knowledge.store import Hit
from app.metrics import ANSWERS
from app.pipeline import jobs as llm_jobs
from app.pipeline.privacy import mask_pii
from app.settings import Settings
from app.store import HandoffRequest

HANDOFF_MESSAGE = "已为您转接人工客服，请稍候，客服人员会尽快回复您。"


def passage(hit: Hit) -> dict[str, Any]:
    """One retrieved passage as the tools and /dify/retrieval show it."""
    meta = hit.metadata or {}
    score = hit.relevance if hit.relevance is not None else hit.score
    item: dict[str, Any] = {
        "content": hit.text,
        "score": round(max(0.0, min(1.0, float(score))), 4),
        "source": hit.source,
        "section": hit.section,
        "category": hit.category,
        "doc_id": hit.doc_id,
        "chunk_id": hit.chunk_id,
    }
    if meta.get("question") and meta.get("answer"):
        item["faq_question"] = str(meta["question"])
        item["faq_answer"] = str(meta["answer"])
    return item


def search(settings: Settings, query: str, top_k: int, category: str = "") -> list[dict[str, Any]]:
    store = resources.knowledge_store(settings)
    hits = store.search(query, top_k=top_k, category=category or None)
    return [passage(h) for h in hits]


def faq_lookup(settings: Settings, question: str) -> dict[str, Any]:
    """The FAQ entry that *is* the customer's question (by its characters, or by meaning
    with the verbatim thresholds: app/faq/matching.py), if any; otherwise the closest FAQ
    questions, for the caller to decide."""
    matcher = resources.faq_matcher(settings)
    q = mask_pii(question.strip())
    best = matcher.best(q)
    nearest = matcher.nearest(q, 3)
    found = best is not None and best.verdict == "verbatim"
    result: dict[str, Any] = {
        "found": found,
        "question": "",
        "answer": "",
        "category": "",
        "source": "",
        "candidates": [m.entry.question for m in nearest],
    }
    if found and best is not None:
        entry = best.entry
        result.update(
            question=entry.question,
            answer=entry.answer,
            category=entry.category,
            source=entry.source,
        )
    return result


#: OCR text beyond this is left out of the question (the prompt has a context budget).
IMAGE_TEXT_CHARS = 1000


def answer(
    settings: Settings, question: str, max_seconds: float | None, *, image_text: str = ""
) -> dict[str, Any]:
    """A grounded answer with sources, within a wall-clock budget (Dify waits 60 s)."""
    if image_text.strip():
        question = (
            f"{question}\n（顾客发来的图片中的文字：{image_text.strip()[:IMAGE_TEXT_CHARS]}）"
        )
    budget = min(max_seconds or settings.tools_answer_budget_s, settings.tools_answer_budget_s)
    started = time.time()
    done = llm_jobs.collect(
        settings, "answer", {"question": question, "deadline": started + budget}
    )
    result = done["result"]
    ANSWERS.labels(outcome="api_answered").inc()
    return {
        "answer": result["text"],
        "sources": result["sources"],
        "from_faq": result["from_faq"],
        "truncated": result["truncated"],
        "seconds": round(time.time() - started, 2),
    }


def ocr_bytes(settings: Settings, data: bytes) -> dict[str, Any]:
    result = resources.ocr_engine(settings).read(data)
    return {
        "text": result.text,
        "lines": [{"text": line.text, "score": round(line.confidence, 4)} for line in result.lines],
        "width": result.width,
        "height": result.height,
    }


def ocr_url(settings: Settings, url: str) -> dict[str, Any]:
    data = fetch.fetch_bytes(
        url, settings.tools_max_image_bytes, allow_loopback=settings.tools_fetch_allow_loopback
    )
    return ocr_bytes(settings, data)


def handoff(
    *,
    customer: str,
    conversation_id: str,
    reason: str,
    summary: str,
    api_key_id: int | None,
) -> dict[str, Any]:
    row = HandoffRequest(
        source="dify",
        customer=customer,
        conversation_id=conversation_id,
        reason=reason,
        summary=summary,
        api_key_id=api_key_id,
    )
    db.session.add(row)
    db.session.commit()
    return {"handoff_id": row.id, "status": row.status, "message": HANDOFF_MESSAGE}
