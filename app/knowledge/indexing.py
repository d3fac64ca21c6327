"""Indexing one document version: parse, chunk, embed and write it, reporting progress on
the document's row; and re-queuing versions whose indexing task was lost.

Indexing a version writes its chunks before deleting the chunks only the old version had,
so a search meanwhile finds the old or the new text, never neither; it holds the
"kb-write" lock (app/knowledge/documents.py) while it writes. Safe to run twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import exists as sql_exists
from sqlalchemy import select

from app import errors
from app.extensions import db
from app.knowledge.chunking import Chunk, chunk_document
from app.knowledge.documents import WRITE_LOCK, latest_number, limits, lock_dir, versions_of
from app.knowledge.sources import BadFile, parse_bytes
from app.knowledge.store import KnowledgeStore, KnowledgeStoreError
from app.settings import Settings
from app.store import Document, DocumentStatus, DocumentVersion
from app.store.locks import named_lock

log = logging.getLogger(__name__)

EMBED_BATCH = 64

Progress = Callable[[int, str], None]


def _set_progress(doc_id: str, status: str, progress: int, stage: str) -> None:
    doc = db.session.get(Document, doc_id)
    if doc is not None:
        doc.status, doc.progress, doc.stage = status, max(0, min(100, progress)), stage[:128]
        db.session.commit()


def _fail(version: DocumentVersion, message: str) -> str:
    doc = db.session.get(Document, version.document_id)
    version.status, version.error = DocumentStatus.FAILED, message
    if doc is not None:
        served = f"; version {doc.version} is still served" if doc.version else ""
        doc.status, doc.error, doc.stage = DocumentStatus.FAILED, message + served, "failed"
    db.session.commit()
    log.warning("indexing %s v%s failed: %s", version.document_id, version.number, message)
    return DocumentStatus.FAILED


def _superseded(version: DocumentVersion) -> bool:
    return version.number < latest_number(version.document_id)


def write_chunks(
    store: KnowledgeStore, doc_id: str, chunks: list[Chunk], progress: Progress | None = None
) -> None:
    """Make ``store`` hold exactly ``chunks`` for ``doc_id``: new chunks first, then the
    removal of those only the previous version had. Unchanged chunks keep their vectors."""
    old_ids = store.chunk_ids(doc_id)
    new_ids = {c.chunk_id for c in chunks}
    try:
        for start in range(0, len(chunks), EMBED_BATCH):
            store.upsert_chunks(chunks[start : start + EMBED_BATCH], flush=False)
            if progress is not None:
                done = min(start + EMBED_BATCH, len(chunks))
                progress(done, f"indexing {done}/{len(chunks)} chunks")
        store.delete_chunks(old_ids - new_ids, flush=False)
        store.flush()
    except Exception:
        # Leave the old version whole: take back what this one added.
        try:
            store.delete_chunks(new_ids - old_ids)
        except Exception:  # noqa: BLE001 - Milvus is failing; the reindex repairs this
            log.exception("could not roll back the chunks of %s", doc_id)
        raise
    stored = store.count(doc_id=doc_id)
    if stored != len(new_ids):
        raise KnowledgeStoreError(
            f"Milvus holds {stored} chunks of {doc_id}, expected {len(new_ids)}"
        )


def parse_version(version: DocumentVersion, doc: Document, settings: Settings, progress=None):  # noqa: ANN001, ANN201
    """The chunks of a stored version (BadFile when it cannot be read)."""
    parsed = parse_bytes(
        version.content or b"",
        version.filename,
        source=doc.source,
        category=doc.category,
        limits=limits(settings),
        progress=progress,
    )
    from app.faq.publishing import apply_overrides  # the staff's edits of its FAQ entries

    parsed = apply_overrides(parsed)
    return parsed, chunk_document(parsed)


def index_version(version_id: int, store: KnowledgeStore, settings: Settings) -> str:
    """Parse, chunk, embed and write one version, reporting progress on the document row.
    Safe to run twice; returns indexed, failed, superseded or gone."""
    version = db.session.get(DocumentVersion, version_id)
    doc = db.session.get(Document, version.document_id) if version is not None else None
    if version is None or doc is None:
        return "gone"
    if version.status in (DocumentStatus.INDEXED, DocumentStatus.SUPERSEDED):
        return version.status
    if _superseded(version):
        version.status = DocumentStatus.SUPERSEDED
        db.session.commit()
        return DocumentStatus.SUPERSEDED
    doc_id = doc.id
    processing = DocumentStatus.PROCESSING
    version.status = processing
    _set_progress(doc_id, processing, 2, "reading the file")

    def on_page(done: int, total: int) -> None:
        _set_progress(doc_id, processing, 2 + 38 * done // total, f"reading page {done}/{total}")

    try:
        parsed, chunks = parse_version(version, doc, settings, on_page)
    except BadFile as exc:
        return _fail(version, str(exc))
    if not chunks:
        return _fail(version, f"{version.filename}: no text to index")

    def on_chunks(done: int, stage: str) -> None:
        _set_progress(doc_id, processing, 40 + 58 * done // len(chunks), stage)

    with named_lock(WRITE_LOCK, lock_dir(settings)):
        db.session.expire_all()
        version = db.session.get(DocumentVersion, version_id)
        doc = db.session.get(Document, doc_id)
        if version is None or doc is None:
            return "gone"  # deleted while we parsed: write nothing
        if _superseded(version):
            version.status = DocumentStatus.SUPERSEDED
            db.session.commit()
            return DocumentStatus.SUPERSEDED
        try:
            write_chunks(store, doc_id, chunks, on_chunks)
        except Exception as exc:  # noqa: BLE001 - Milvus or the embedder failed
            log.exception("indexing %s (version %s) failed", doc_id, version_id)
            db.session.rollback()
            why = errors.shown_text(exc, "an internal error (the worker's log has it)")
            return _fail(db.session.get(DocumentVersion, version_id), f"indexing failed: {why}")
        now = datetime.now(UTC)
        for other in versions_of(doc_id):
            if other.id != version.id and other.status != DocumentStatus.FAILED:
                other.status, other.content = DocumentStatus.SUPERSEDED, None
        version.status, version.indexed_at = DocumentStatus.INDEXED, now
        version.chunk_count = len(chunks)
        doc.version, doc.sha256, doc.chunk_count = version.number, version.sha256, len(chunks)
        doc.title, doc.kind = parsed.title[:512], parsed.kind
        doc.status, doc.progress, doc.stage, doc.error = DocumentStatus.INDEXED, 100, "indexed", ""
        if parsed.warnings:
            doc.error = "; ".join(parsed.warnings)[:2000]
        db.session.commit()
    return DocumentStatus.INDEXED


#: Waiting for indexing, or being indexed.
_PENDING = (DocumentStatus.QUEUED, DocumentStatus.PROCESSING)


def requeue_stalled(settings: Settings, enqueue: Callable[[int], None]) -> list[int]:
    """Re-queues versions whose indexing task was lost (the broker lost it, a worker died
    and the task was not redelivered): queued or processing, with no progress for
    KB_STALLED_AFTER_S, while no document is making progress (a version waiting behind a
    busy worker is not lost). Each is touched, so it is re-queued at most once a period;
    indexing a version twice is harmless (index_version returns early)."""
    quiet = datetime.now(UTC) - timedelta(seconds=settings.kb_stalled_after_s)
    busy = db.session.scalar(
        select(
            sql_exists().where(
                Document.status == DocumentStatus.PROCESSING, Document.updated_at >= quiet
            )
        )
    )
    if busy:
        db.session.rollback()
        return []
    stalled = db.session.execute(
        select(DocumentVersion.id, Document.id)
        .join(Document, Document.id == DocumentVersion.document_id)
        .where(
            DocumentVersion.status.in_(_PENDING),
            Document.status.in_(_PENDING),
            Document.updated_at < quiet,
        )
        .order_by(DocumentVersion.id)
    ).all()
    requeued = []
    for version_id, doc_id in stalled:
        doc = db.session.get(Document, doc_id)
        doc.stage, doc.updated_at = "re-queued: its indexing task was lost", datetime.now(UTC)
        db.session.commit()
        enqueue(version_id)
        requeued.append(version_id)
    return requeued
