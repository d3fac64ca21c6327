"""From the staff's FAQ table (app/faq/editing.py) to the index, within seconds.

- ``publish``: after a change, the documents it touched are indexed again at once, in the
  request: the staff document gets a new version (a CSV written from the table) indexed
  like an upload; a spreadsheet whose entry was edited has its served version chunked
  again with the edits applied and written over its chunks (unchanged chunks keep their
  vectors: only the new questions are embedded). If the index cannot be written now the
  version is queued for the workers, and the change is still stored.
- ``apply_overrides``: what indexing a spreadsheet does with the staff's edits of its
  entries (app/knowledge/indexing.py ``parse_version``: uploads, replacements, reindex).
- ``spreadsheet_entries``: the entries of the served FAQ spreadsheets, for the FAQ list
  and to start editing one (``adopt``).

Every process sees the change soon after: the FAQ table each process keeps in memory
(app/faq/table.py) looks every ``POLL_S`` at when the documents last changed and reads the
entries again when they did, so web processes answer the new entry instantly too.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from flask import current_app

from app.extensions import db
from app.faq import editing
from app.knowledge import documents
from app.knowledge.sources import Document as Parsed
from app.knowledge.sources import FaqEntry, parse_bytes, text_cell
from app.settings import Settings
from app.store import Document, DocumentStatus, DocumentVersion, FaqRecord
from app.store.locks import named_lock

log = logging.getLogger(__name__)

#: The header an import reads (app/knowledge/sources.py), and the export writes.
COLUMNS = ("question", "similar_questions", "answer", "category")
_parsed_cache: dict[str, tuple[FaqEntry, ...]] = {}


# --- the spreadsheet side ----------------------------------------------------------------


def apply_overrides(parsed: Parsed) -> Parsed:
    """``parsed`` (an FAQ spreadsheet) with the staff's edits of its entries: an edited
    entry replaced, a disabled one left out."""
    if parsed.kind != "faq" or parsed.doc_id == editing.STAFF_DOC:
        return parsed
    overrides = editing.overrides_of(parsed.doc_id)
    if not overrides:
        return parsed
    out = []
    for entry in parsed.faqs:
        record = overrides.get(editing.key_of(entry.question))
        if record is None:
            out.append(entry)
        elif record.enabled:
            out.append(
                FaqEntry(
                    record.question,
                    record.answer,
                    tuple(editing.paraphrases_of(record)),
                    record.category,
                    entry.row,
                )
            )
    return replace(parsed, faqs=tuple(out))


def _served(doc_id: str) -> tuple[Document, DocumentVersion] | None:
    doc = db.session.get(Document, doc_id)
    if doc is None or doc.version <= 0:
        return None
    version = db.session.scalar(
        db.select(DocumentVersion).where(
            DocumentVersion.document_id == doc_id, DocumentVersion.number == doc.version
        )
    )
    return (doc, version) if version is not None and version.content else None


def _entries_of(doc: Document, version: DocumentVersion) -> tuple[FaqEntry, ...]:
    cached = _parsed_cache.get(version.sha256)
    if cached is None:
        parsed = parse_bytes(version.content or b"", version.filename, source=doc.source)
        cached = _parsed_cache[version.sha256] = parsed.faqs
        if len(_parsed_cache) > 64:
            _parsed_cache.pop(next(iter(_parsed_cache)))
    return cached


def spreadsheet_entries() -> list[dict[str, Any]]:
    """The entries of the served FAQ spreadsheets that staff have not edited, as the FAQ
    list shows them (no id: editing one first ``adopt``s it)."""
    out = []
    faq_docs = db.session.scalars(
        db.select(Document).where(Document.kind == "faq", Document.id != editing.STAFF_DOC)
    )
    for doc in faq_docs:
        served = _served(doc.id)
        if served is None:
            continue
        overrides = editing.overrides_of(doc.id)
        for entry in _entries_of(*served):
            if editing.key_of(entry.question) in overrides:
                continue
            out.append(
                {
                    "id": None,
                    "doc_id": doc.id,
                    "origin": "spreadsheet",
                    "base_question": entry.question,
                    "question": entry.question,
                    "paraphrases": list(entry.similar_questions),
                    "answer": entry.answer,
                    "category": entry.category or doc.category,
                    # A spreadsheet switched off on the documents page answers nothing.
                    "enabled": bool(doc.enabled),
                    "version": 0,
                }
            )
    return out


def adopt(doc_id: str, question: str, actor: str) -> FaqRecord:
    """The staff's row for an entry of spreadsheet ``doc_id`` (made from the entry the
    first time): what editing that entry edits."""
    key = editing.key_of(question)
    existing = editing.overrides_of(doc_id).get(key)
    if existing is not None:
        return existing
    served = _served(doc_id)
    entry = None
    if served is not None:
        entry = next((e for e in _entries_of(*served) if editing.key_of(e.question) == key), None)
    if entry is None:
        raise editing.NotFound(f"no FAQ entry {question[:80]!r} in document {doc_id!r}")
    fields = {
        "question": entry.question,
        "paraphrases": list(entry.similar_questions),
        "answer": entry.answer,
        "category": entry.category or served[0].category,
    }
    return editing.create(fields, actor, doc_id=doc_id, base=entry.question)


# --- the staff document -------------------------------------------------------------------


def export_rows(entries: list[dict[str, Any]]) -> list[list[str]]:
    """Entries as the import's columns' cells (``COLUMNS``), none a formula in a
    spreadsheet, each read back by the import as it was (``text_cell``)."""
    return [
        [
            text_cell(e["question"]),
            text_cell("|".join(e["paraphrases"])),
            text_cell(e["answer"]),
            text_cell(e.get("category", "")),
        ]
        for e in entries
    ]


def rows_csv(entries: list[dict[str, Any]]) -> bytes:
    """Entries in the import's columns, as CSV (UTF-8 with a BOM, which Excel needs)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows(export_rows(entries))
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def staff_csv() -> bytes:
    return rows_csv([editing.record_dict(r) for r in editing.staff_records(enabled_only=True)])


def _settings() -> Settings:
    return current_app.extensions["settings"]


def _staff_version(actor: str, settings: Settings) -> DocumentVersion | None:
    """A new version of the staff document when its CSV changed; None when unchanged."""
    import hashlib

    data = staff_csv()
    doc = db.session.get(Document, editing.STAFF_DOC)
    if doc is None:
        return documents.add_document(
            data, editing.STAFF_DOC, actor=actor, settings=settings, origin="staff"
        )
    latest = db.session.scalar(
        db.select(DocumentVersion)
        .where(DocumentVersion.document_id == doc.id)
        .order_by(DocumentVersion.number.desc())
        .limit(1)
    )
    if latest is not None and latest.sha256 == hashlib.sha256(data).hexdigest():
        if latest.status == DocumentStatus.INDEXED:
            return None
    return documents.replace_document(
        doc.id, data, editing.STAFF_DOC, actor=actor, settings=settings
    )


def publish(doc_ids: set[str], actor: str) -> dict[str, str]:
    """Index the documents a change touched, now; doc_id -> indexed | queued | unchanged."""
    from app import resources
    from app.knowledge.indexing import index_version, parse_version, write_chunks

    settings = _settings()
    outcome: dict[str, str] = {}
    for doc_id in sorted(doc_ids):
        if doc_id == editing.STAFF_DOC:
            version = _staff_version(actor, settings)
            if version is None:
                outcome[doc_id] = "unchanged"
                continue
            try:
                state = index_version(version.id, resources.knowledge_store(settings), settings)
            except Exception:  # noqa: BLE001 - Milvus or the embedder: the workers retry
                log.exception("indexing the staff FAQ now failed; queued")
                db.session.rollback()
                state = _queue(version.id)
            outcome[doc_id] = str(state)
            continue
        try:
            with named_lock(documents.WRITE_LOCK, documents.lock_dir(settings)):
                db.session.expire_all()
                served = _served(doc_id)
                if served is None:
                    outcome[doc_id] = "unchanged"
                    continue
                _parsed, chunks = parse_version(served[1], served[0], settings)
                write_chunks(resources.knowledge_store(settings), doc_id, chunks)
                served[0].chunk_count = len(chunks)
                served[0].updated_at = datetime.now(UTC)  # what every process's table watches
                db.session.commit()
            outcome[doc_id] = "indexed"
        except Exception:  # noqa: BLE001 - the next reindex applies the edit
            log.exception("indexing the edit of %s failed", doc_id)
            db.session.rollback()
            outcome[doc_id] = "failed"
    return outcome


def _queue(version_id: int) -> str:
    try:
        from app.tasks import index_document

        index_document.delay(version_id)
        return "queued"
    except Exception:  # noqa: BLE001 - the sweeper re-queues stalled versions
        log.exception("could not queue indexing of version %s", version_id)
        return "queued"


def change_stamp(database_url: str) -> Callable[[], object]:
    """When the documents last changed (and how many there are): what each process's FAQ
    table watches (app/faq/table.py ``POLL_S``). One small connection pool of its own, as
    the table's thread runs outside any app context; None while the database cannot say."""
    import sqlalchemy as sa

    engine: list[sa.Engine] = []

    def stamp() -> object:
        if not engine:
            options: dict[str, Any] = {"pool_pre_ping": True}
            if not database_url.startswith("sqlite"):
                options.update(pool_size=1, max_overflow=0)
            engine.append(sa.create_engine(database_url, **options))
        with engine[0].connect() as conn:
            row = conn.execute(sa.text("SELECT max(updated_at), count(*) FROM documents")).one()
        return (str(row[0]), int(row[1]))

    return stamp
