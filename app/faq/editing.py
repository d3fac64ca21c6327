"""FAQ entries made and edited by staff on the pages (/admin/faq, /admin/unanswered).

Where they live: the database table ``faq_entries`` (app/store/curation.py ``FaqRecord``)
is their source of truth, not the collection and not a spreadsheet. Milvus only holds an
index of them, rebuilt from the table (app/faq/publishing.py):

- an entry staff write themselves belongs to one document of the documents table,
  ``STAFF_DOC`` (origin "staff"): every change stores a new version of it, a CSV written
  from the table in the columns an import reads, and indexes that version at once. So a
  reindex (which rebuilds every document from its stored version) and a backup of the
  database keep them, and re-uploading a spreadsheet (another document) does not touch
  them;
- an edit of an entry that came from an uploaded spreadsheet is a row naming that
  spreadsheet's document and the entry's question (``base_question``): whenever the
  spreadsheet is indexed (its upload, a replacement, a reindex) the row replaces that
  entry, or drops it when disabled. A re-uploaded spreadsheet therefore keeps the staff's
  paraphrases and corrections for every question it still has.

Every change names the version it started from (``version``): a concurrent edit gets 409
and changes nothing; every change is in the audit log with who made it.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update

from app import errors
from app.accounts import audit
from app.extensions import db
from app.store import FaqRecord
from app.text import normalise

#: The document the staff's own entries are indexed as (a CSV version per change).
STAFF_DOC = "staff-faq.csv"
MAX_QUESTION = 200  # app/pipeline/instant.py answers questions up to this long
MAX_PARAPHRASES = 100
MAX_ANSWER = 4000
MAX_CATEGORY = 64
#: Markup: the answer goes to customers word for word, and no field is ever HTML.
_TAG = re.compile(r"<\s*/?\s*[A-Za-z!][^>]*>")
#: What a spreadsheet would run (the import skips such rows: app/knowledge/sources.py).
_FORMULA = re.compile(r"=|[+\-@]\s*[A-Za-z_][\w.]*\s*\(|[+\-@][^|]*\|[^!]*!")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class NotFound(errors.NotFound, LookupError):
    """No such entry (404)."""


class Conflict(errors.Conflict, ValueError):
    """Another edit came first, or the question is another entry's (409)."""


def key_of(question: str) -> str:
    """What two questions are compared by: their characters without punctuation or case."""
    return normalise(question)[:255]


# --- input ----------------------------------------------------------------------------


def _text(value: Any, name: str, limit: int, *, required: bool, line: bool) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise errors.BadRequest(f"{name} must be a string")
    value = value.replace("\r\n", "\n").strip()
    if required and not value:
        raise errors.BadRequest(f"{name} must not be empty")
    if len(value) > limit:
        raise errors.BadRequest(f"{name} is longer than {limit} characters")
    if _TAG.search(value):
        raise errors.BadRequest(f"{name} must be plain text: HTML tags are not allowed")
    if _CONTROL.search(value) or (line and "\n" in value):
        raise errors.BadRequest(f"{name} must be one line of plain text")
    if value and _FORMULA.match(value):
        raise errors.BadRequest(f"{name} must not start like a spreadsheet formula")
    return value


def question_text(value: Any, name: str = "question") -> str:
    text = _text(value, name, MAX_QUESTION, required=True, line=True)
    if "|" in text or "｜" in text:
        raise errors.BadRequest(f"{name} must not contain '|' (it separates paraphrases)")
    if not key_of(text):
        raise errors.BadRequest(f"{name} has no words")
    return text


def clean_fields(body: Any, *, partial: bool = False) -> dict[str, Any]:
    """The entry's fields from a JSON body, checked; BadRequest (400) naming the problem."""
    if not isinstance(body, dict):
        raise errors.BadRequest("send a JSON object")
    out: dict[str, Any] = {}
    if not partial or "question" in body:
        out["question"] = question_text(body.get("question"))
    if not partial or "answer" in body:
        out["answer"] = _text(body.get("answer"), "answer", MAX_ANSWER, required=True, line=False)
    if not partial or "category" in body:
        out["category"] = _text(
            body.get("category"), "category", MAX_CATEGORY, required=False, line=True
        )
    if not partial or "paraphrases" in body:
        out["paraphrases"] = paraphrase_list(body.get("paraphrases") or [])
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise errors.BadRequest("enabled must be true or false")
        out["enabled"] = body["enabled"]
    return out


def paraphrase_list(value: Any, name: str = "paraphrases") -> list[str]:
    if not isinstance(value, list):
        raise errors.BadRequest(f"{name} must be a list of strings")
    if len(value) > MAX_PARAPHRASES:
        raise errors.BadRequest(f"{name} has more than {MAX_PARAPHRASES} items")
    cleaned = [question_text(v, f"{name}[{i}]") for i, v in enumerate(value)]
    return list(dict.fromkeys(cleaned))


def version_of(body: Any) -> int:
    version = body.get("version") if isinstance(body, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise errors.BadRequest("version (the entry's version you edited) must be an integer")
    return version


# --- records --------------------------------------------------------------------------


def paraphrases_of(record: FaqRecord) -> list[str]:
    try:
        value = json.loads(record.paraphrases or "[]")
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def get(entry_id: int) -> FaqRecord:
    record = db.session.get(FaqRecord, entry_id)
    if record is None:
        raise NotFound(f"no FAQ entry {entry_id}")
    return record


def records(query: str | None = None, category: str | None = None) -> list[FaqRecord]:
    stmt = select(FaqRecord).order_by(FaqRecord.updated_at.desc(), FaqRecord.id.desc())
    if query:
        like = f"%{query}%"
        stmt = stmt.where(
            or_(
                FaqRecord.question.ilike(like),
                FaqRecord.answer.ilike(like),
                FaqRecord.paraphrases.ilike(like),
            )
        )
    if category:
        stmt = stmt.where(FaqRecord.category == category)
    return list(db.session.scalars(stmt))


def staff_records(*, enabled_only: bool = False) -> list[FaqRecord]:
    stmt = select(FaqRecord).where(FaqRecord.doc_id == STAFF_DOC).order_by(FaqRecord.id)
    if enabled_only:
        stmt = stmt.where(FaqRecord.enabled.is_(True))
    return list(db.session.scalars(stmt))


def overrides_of(doc_id: str) -> dict[str, FaqRecord]:
    """base_key -> the staff's row replacing that entry of spreadsheet ``doc_id``."""
    stmt = select(FaqRecord).where(FaqRecord.doc_id == doc_id, FaqRecord.base_key != "")
    return {r.base_key: r for r in db.session.scalars(stmt)}


def _check_unique(question: str, paraphrases: list[str], doc_id: str, own_id: int | None) -> None:
    """A question may be one entry's only: two entries with the same question would each
    stop the other from being answered verbatim (app/faq/matching.py: the gap)."""
    asked = {key_of(q) for q in [question, *paraphrases]}
    for other in db.session.scalars(select(FaqRecord).where(FaqRecord.enabled.is_(True))):
        if other.id == own_id:
            continue
        theirs = {key_of(q) for q in [other.question, *paraphrases_of(other)]}
        clash = asked & theirs
        if clash:
            raise Conflict(
                f"FAQ entry {other.id} ({other.question[:50]}) already has this question",
                entry_id=other.id,
            )


def create(
    fields: dict[str, Any], actor: str, *, doc_id: str = STAFF_DOC, base: str = ""
) -> FaqRecord:
    """A new entry (or the first edit of a spreadsheet entry: ``doc_id`` and ``base``);
    added to the session with its audit entry, not committed."""
    paraphrases = [
        p for p in fields.get("paraphrases", []) if key_of(p) != key_of(fields["question"])
    ]
    _check_unique(fields["question"], paraphrases, doc_id, None)
    record = FaqRecord(
        doc_id=doc_id,
        base_question=base,
        base_key=key_of(base) if base else "",
        question=fields["question"],
        paraphrases=json.dumps(paraphrases, ensure_ascii=False),
        answer=fields["answer"],
        category=fields.get("category", ""),
        enabled=fields.get("enabled", True),
        version=1,
        created_by=actor[:64],
        updated_by=actor[:64],
    )
    db.session.add(record)
    db.session.flush()
    audit.record(actor, "faq.create", f"faq:{record.id}", question=record.question, doc=doc_id)
    return record


def change(record: FaqRecord, fields: dict[str, Any], version: int, actor: str) -> FaqRecord:
    """Apply ``fields`` to the entry if it is still at ``version`` (409 otherwise): one
    conditional UPDATE, so two edits from the same version cannot both win."""
    merged = {
        "question": record.question,
        "paraphrases": paraphrases_of(record),
        "answer": record.answer,
        "category": record.category,
        "enabled": record.enabled,
        **fields,
    }
    merged["paraphrases"] = [
        p for p in dict.fromkeys(merged["paraphrases"]) if key_of(p) != key_of(merged["question"])
    ]
    if merged["enabled"]:
        _check_unique(merged["question"], merged["paraphrases"], record.doc_id, record.id)
    values = {
        "question": merged["question"],
        "paraphrases": json.dumps(merged["paraphrases"], ensure_ascii=False),
        "answer": merged["answer"],
        "category": merged["category"],
        "enabled": merged["enabled"],
        "version": version + 1,
        "updated_by": actor[:64],
        "updated_at": datetime.now().astimezone(),
    }
    done = db.session.execute(
        update(FaqRecord)
        .where(FaqRecord.id == record.id, FaqRecord.version == version)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:
        db.session.rollback()
        raise Conflict(
            f"FAQ entry {record.id} was changed by someone else meanwhile (you edited "
            f"version {version}): reload it and edit again",
            entry_id=record.id,
        )
    changed = sorted(k for k in fields if k != "enabled" or fields[k] != record.enabled)
    audit.record(actor, "faq.edit", f"faq:{record.id}", fields=changed, version=version + 1)
    db.session.expire(record)
    return record


def remove(record: FaqRecord, version: int, actor: str) -> None:
    """Delete a staff entry; an edit of a spreadsheet entry is disabled instead (a row
    that keeps the spreadsheet's entry out of the index until enabled again)."""
    if record.version != version:
        raise Conflict(
            f"FAQ entry {record.id} was changed by someone else meanwhile: reload it",
            entry_id=record.id,
        )
    if record.base_key:
        change(record, {"enabled": False}, version, actor)
        return
    audit.record(actor, "faq.delete", f"faq:{record.id}", question=record.question)
    db.session.delete(record)


def record_dict(record: FaqRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "doc_id": record.doc_id,
        "origin": "staff" if record.doc_id == STAFF_DOC else "spreadsheet",
        "base_question": record.base_question,
        "question": record.question,
        "paraphrases": paraphrases_of(record),
        "answer": record.answer,
        "category": record.category,
        "enabled": record.enabled,
        "version": record.version,
        "created_by": record.created_by,
        "updated_by": record.updated_by,
        "created_at": record.created_at.isoformat() if record.created_at else None,
        "updated_at": record.updated_at.isoformat() if record.updated_at else None,
    }
