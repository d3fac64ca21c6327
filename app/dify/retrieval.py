"""Dify's External Knowledge API: a retrieval request in, Dify's `records` out.

`knowledge_id` names what to search: "all" (or the collection's name, or "default") for the
whole knowledge base, "doc:<document id>" for one document, anything else a category (物流,
售后, …). Scores are the query/passage cosine similarity (0-1), so Dify's score_threshold
means the same thing whatever the ranking. metadata_condition is applied to a widened
candidate list (an `is` on category or doc_id narrows the search itself).
"""

from __future__ import annotations

from typing import Any

from app import resources
from app.dify.tools import passage
from app.errors import BadRequest, NotFound
from app.knowledge.store import Hit
from app.settings import Settings

WHOLE_BASE = {"all", "default", "*"}
MAX_TOP_K = 50
#: Candidates fetched per record asked for, when conditions filter after retrieval.
WIDEN = 5


class KnowledgeNotFound(NotFound, LookupError):
    """No knowledge base of this id (Dify's error code 2001)."""

    code = "knowledge_not_found"


class BadCondition(BadRequest, ValueError):
    """A metadata condition this API cannot evaluate."""


_FIELDS = {"category", "source", "section", "doc_id", "kind", "chunk_id"}
_OPERATORS = {
    "contains",
    "not contains",
    "start with",
    "end with",
    "is",
    "is not",
    "empty",
    "not empty",
    "in",
    "not in",
    "=",
    "≠",
    ">",
    "<",
    "≥",
    "≤",
    "before",
    "after",
}


def _value_of(hit: Hit, name: str) -> Any:
    if name in _FIELDS:
        return getattr(hit, name)
    return (hit.metadata or {}).get(name)


def _num(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _matches(hit: Hit, cond: dict[str, Any]) -> bool:
    op, want = cond["comparison_operator"], cond.get("value")
    have = _value_of(hit, cond["name"])
    if op == "empty":
        return have in (None, "", [], {})
    if op == "not empty":
        return have not in (None, "", [], {})
    if have is None:
        return op in ("is not", "not contains", "not in", "≠")
    text = " ".join(map(str, have)) if isinstance(have, list) else str(have)
    wants = [str(w) for w in want] if isinstance(want, list) else [str(want)]
    if op == "contains":
        return str(want) in text if not isinstance(have, list) else str(want) in map(str, have)
    if op == "not contains":
        return not _matches(hit, {**cond, "comparison_operator": "contains"})
    if op == "start with":
        return text.startswith(str(want))
    if op == "end with":
        return text.endswith(str(want))
    if op == "is":
        return text == str(want)
    if op == "is not":
        return text != str(want)
    if op == "in":
        return text in wants
    if op == "not in":
        return text not in wants
    if op in ("before", "after"):  # ISO dates and timestamps compare as text
        return text < str(want) if op == "before" else text > str(want)
    a, b = _num(have), _num(want)
    if a is None or b is None:
        return False
    return {"=": a == b, "≠": a != b, ">": a > b, "<": a < b, "≥": a >= b, "≤": a <= b}[op]


def check_condition(condition: dict[str, Any] | None) -> None:
    if not condition:
        return
    for cond in condition.get("conditions") or []:
        if cond.get("comparison_operator") not in _OPERATORS:
            raise BadCondition(
                f"unsupported comparison_operator {cond.get('comparison_operator')!r}; one of "
                + ", ".join(sorted(_OPERATORS))
            )


def _pushdown(condition: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """A category/doc_id `is` under `and` narrows the search itself."""
    if not condition or condition.get("logical_operator", "and") != "and":
        return None, None
    found: dict[str, str] = {}
    for cond in condition.get("conditions") or []:
        if cond["comparison_operator"] == "is" and cond["name"] in ("category", "doc_id"):
            found.setdefault(cond["name"], str(cond.get("value")))
    return found.get("category"), found.get("doc_id")


def retrieve(
    settings: Settings,
    knowledge_id: str,
    query: str,
    top_k: int,
    score_threshold: float,
    condition: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    store = resources.knowledge_store(settings)
    category: str | None = None
    doc_id: str | None = None
    kid = knowledge_id.strip()
    if kid.startswith("doc:"):
        doc_id = kid[4:]
    elif kid.lower() not in WHOLE_BASE and kid != settings.milvus_collection:
        category = kid
    pushed_category, pushed_doc = _pushdown(condition)
    if (category and pushed_category and category != pushed_category) or (
        doc_id and pushed_doc and doc_id != pushed_doc
    ):
        return []
    category, doc_id = category or pushed_category, doc_id or pushed_doc
    top_k = min(top_k, MAX_TOP_K)
    conditions = (condition or {}).get("conditions") or []
    fetch = top_k * WIDEN if conditions else top_k
    hits = store.search(query, top_k=fetch, category=category, doc_id=doc_id)
    if not hits and (category or doc_id) and not _exists(store, category, doc_id):
        raise KnowledgeNotFound(f"The knowledge does not exist: {knowledge_id!r}")
    if conditions:
        any_mode = (condition or {}).get("logical_operator", "and") == "or"
        combine = any if any_mode else all
        hits = [h for h in hits if combine(_matches(h, c) for c in conditions)]
    records = []
    for hit in hits:
        item = passage(hit)
        if item["score"] < score_threshold:
            continue
        meta = {k: v for k, v in item.items() if k != "content"}
        meta.update({k: v for k, v in (hit.metadata or {}).items() if k not in meta})
        records.append(
            {
                "content": item["content"],
                "score": item["score"],
                "title": _title(hit),
                "metadata": meta,
            }
        )
        if len(records) == top_k:
            break
    return records


def _title(hit: Hit) -> str:
    question = (hit.metadata or {}).get("question")
    if question:
        return str(question)
    name = hit.source.rsplit("/", 1)[-1]
    return f"{name} · {hit.section}" if hit.section else name


def _exists(store: Any, category: str | None, doc_id: str | None) -> bool:
    """An empty result from a filter that matches nothing means an unknown knowledge_id."""
    return bool(store.has_rows(category=category, doc_id=doc_id))
