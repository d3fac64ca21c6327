"""Dify's External Knowledge API: a retrieval request in, Dify's `records` out.

`knowledge_id` names what to search: "all" (or the collection's name, or "default") for the
whole knowledge base, "doc:<document id>" for one document, anything else a category (物流,
售后, …). Scores are the query/passage cosine similarity (0-1), so Dify's score_threshold
means the same thing whatever the ranking. metadata_condition is applied to a widened
candidate list (an `is` on category or doc_id narrows the search itself).
"""

from __future__ import annotations

from datetime import UTC, datetime
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
#: Dify's documented operators, and the two its older pages listed besides (null, not null:
#: empty and not empty by another name).
_OPERATORS = {
    "contains",
    "not contains",
    "start with",
    "end with",
    "is",
    "is not",
    "in",
    "not in",
    "empty",
    "not empty",
    "=",
    "≠",
    ">",
    "<",
    "≥",
    "≤",
    "before",
    "after",
    "null",
    "not null",
}
#: Operators that hold when the field is absent (their positive twin does not).
_NEGATIVE = {"is not", "not contains", "not in", "≠"}
_EMPTY = (None, "", [], {})


def _value_of(hit: Hit, name: str) -> Any:
    if name in _FIELDS:
        return getattr(hit, name)
    return (hit.metadata or {}).get(name)


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _instant(value: Any) -> float | None:
    """A time as a Unix timestamp: a number (Dify's time metadata is seconds since the
    epoch), or an ISO 8601 date or date-time (naive ones read as UTC)."""
    number = _num(value)
    if number is not None:
        return number
    try:
        moment = datetime.fromisoformat(str(value).strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _same(have: Any, want: Any) -> bool:
    """Equal as numbers when both are numbers (5 and "5.0"), otherwise as text."""
    a, b = _num(have), _num(want)
    if a is not None and b is not None:
        return a == b
    return str(have) == str(want)


def _wanted(want: Any) -> list[Any]:
    """The values of an `in` / `not in`: a list, or one string of comma-separated values
    (what Dify's own filters take)."""
    if isinstance(want, list):
        return want
    return [part.strip() for part in str(want).replace("，", ",").split(",") if part.strip()]


def _holds(have: Any, op: str, want: Any) -> bool:
    """One operator on one field's value (``have``; a list for a multi-valued field)."""
    if op in ("empty", "null"):
        return have in _EMPTY
    if op in ("not empty", "not null"):
        return have not in _EMPTY
    if have is None:
        return op in _NEGATIVE
    if op in _NEGATIVE:
        positive = {"is not": "is", "not contains": "contains", "not in": "in", "≠": "="}[op]
        return not _holds(have, positive, want)
    if isinstance(have, list):  # a multi-valued field: holds when one of its values does
        return any(_holds(item, op, want) for item in have)
    text = str(have)
    if op == "contains":
        return str(want) in text
    if op == "start with":
        return text.startswith(str(want))
    if op == "end with":
        return text.endswith(str(want))
    if op == "is":
        return _same(have, want)
    if op == "in":
        return any(_same(have, w) for w in _wanted(want))
    if op in ("before", "after"):
        a, b = _instant(have), _instant(want)
        if a is None or b is None:  # not times: as text (ISO dates sort as text)
            return text < str(want) if op == "before" else text > str(want)
        return a < b if op == "before" else a > b
    a, b = _num(have), _num(want)
    if a is None or b is None:
        return False
    return {"=": a == b, ">": a > b, "<": a < b, "≥": a >= b, "≤": a <= b}[op]


def _matches(hit: Hit, cond: dict[str, Any]) -> bool:
    """A condition on one field, or on several (``name`` a list, as Dify's older pages
    documented it): then it holds when it holds for one of them."""
    op, want = cond["comparison_operator"], cond.get("value")
    names = cond["name"] if isinstance(cond["name"], list) else [cond["name"]]
    return any(_holds(_value_of(hit, str(name)), op, want) for name in names)


def check_condition(condition: dict[str, Any] | None) -> None:
    """Refuses (400) what cannot be evaluated: an unknown operator, a missing value."""
    if not condition:
        return
    for cond in condition.get("conditions") or []:
        op = cond.get("comparison_operator")
        if op not in _OPERATORS:
            raise BadCondition(
                f"unsupported comparison_operator {op!r}; one of " + ", ".join(sorted(_OPERATORS))
            )
        if cond.get("value") is None and op not in ("empty", "not empty", "null", "not null"):
            raise BadCondition(f"the condition on {cond.get('name')!r} ({op}) needs a value")


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
    named = (category, doc_id)  # what knowledge_id names: unknown is error 2001
    pushed_category, pushed_doc = _pushdown(condition)
    if (category and pushed_category and category != pushed_category) or (
        doc_id and pushed_doc and doc_id != pushed_doc
    ):
        _check_exists(store, knowledge_id, *named)
        return []
    category, doc_id = category or pushed_category, doc_id or pushed_doc
    top_k = min(top_k, MAX_TOP_K)
    conditions = (condition or {}).get("conditions") or []
    fetch = top_k * WIDEN if conditions else top_k
    hits = store.search(query, top_k=fetch, category=category, doc_id=doc_id)
    if not hits:
        # Nothing found: an unknown knowledge_id (2001), or conditions nothing meets ([]).
        _check_exists(store, knowledge_id, *named)
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


def _check_exists(store: Any, knowledge_id: str, category: str | None, doc_id: str | None) -> None:
    """A knowledge_id naming a category or a document that has no rows does not exist."""
    if (category or doc_id) and not store.has_rows(category=category, doc_id=doc_id):
        raise KnowledgeNotFound(f"The knowledge does not exist: {knowledge_id!r}")
