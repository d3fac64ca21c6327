"""Knowledge documents through their life: upload, index, replace, delete, search.

The documents table is the record: every uploaded file is a `DocumentVersion` with its
bytes, and `Document.version` names the one readers are served. Indexing a version writes
its chunks before deleting the chunks only the old version had, so a search meanwhile finds
the old or the new text, never neither. Writes to Milvus hold the cross-process "kb-write"
lock, which a reindex takes for its final catch-up and alias switch, so no change is lost
between the two. Every change is in the audit log with who made it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import exists as sql_exists
from sqlalchemy import func, select

from app import errors
from app.accounts import audit
from app.extensions import db
from app.knowledge.chunking import Chunk, chunk_document
from app.knowledge.ingest import DocumentReport, IngestReport, iter_files
from app.knowledge.sources import BadFile, make_doc_id, parse_bytes, relative_source
from app.knowledge.store import Hit, KnowledgeStore, KnowledgeStoreError
from app.knowledge.validation import Limits, UnsupportedFormat, check_suffix
from app.settings import Settings
from app.store import Document, DocumentStatus, DocumentVersion
from app.store.locks import named_lock

log = logging.getLogger(__name__)

WRITE_LOCK = "kb-write"
EMBED_BATCH = 64
MAX_FILENAME = 200
MAX_CATEGORY = 64

Progress = Callable[[int, str], None]


class NotFound(errors.NotFound, LookupError):
    """No such document (404)."""


class Conflict(errors.Conflict, ValueError):
    """A document with this name exists already: replace it instead (409, with the
    document's id in the body)."""

    def __init__(self, message: str, doc_id: str) -> None:
        super().__init__(message, document_id=doc_id)
        self.doc_id = doc_id


def limits(settings: Settings) -> Limits:
    return Limits(
        max_bytes=settings.kb_max_upload_bytes,
        max_unzipped_bytes=settings.kb_max_unzipped_bytes,
        max_zip_ratio=settings.kb_max_zip_ratio,
    )


def lock_dir(settings: Settings) -> Path:
    return settings.data_dir / "locks"


def clean_filename(name: str) -> str:
    """The file's own name, safe to show and store: no folders, control characters or
    leading dots; Chinese kept (werkzeug's secure_filename would strip it)."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().lstrip(".")
    if not name:
        raise BadFile("the file has no name")
    if len(name) > MAX_FILENAME:
        raise BadFile(f"the file name is longer than {MAX_FILENAME} characters")
    return name


def clean_category(category: str | None) -> str:
    category = (category or "").strip()
    if len(category) > MAX_CATEGORY:
        raise BadFile(f"the category is longer than {MAX_CATEGORY} characters")
    return category


# --- records ------------------------------------------------------------------------


def exists(doc_id: str) -> bool:
    return db.session.get(Document, doc_id) is not None


def get_document(doc_id: str) -> Document:
    doc = db.session.get(Document, doc_id)
    if doc is None:
        raise NotFound(f"no document {doc_id!r}")
    return doc


def list_documents(
    *, status: str | None = None, category: str | None = None, query: str | None = None
) -> list[Document]:
    stmt = select(Document).order_by(Document.updated_at.desc(), Document.id)
    if status:
        stmt = stmt.where(Document.status == status)
    if category:
        stmt = stmt.where(Document.category == category)
    if query:
        like = f"%{query}%"
        stmt = stmt.where(Document.id.ilike(like) | Document.title.ilike(like))
    return list(db.session.scalars(stmt))


def versions_of(doc_id: str) -> list[DocumentVersion]:
    stmt = (
        select(DocumentVersion)
        .where(DocumentVersion.document_id == doc_id)
        .order_by(DocumentVersion.number.desc())
    )
    return list(db.session.scalars(stmt))


def categories() -> list[str]:
    rows = db.session.scalars(select(Document.category).distinct().order_by(Document.category))
    return [c for c in rows if c]


def _latest_number(doc_id: str) -> int:
    return int(
        db.session.scalar(
            select(func.max(DocumentVersion.number)).where(DocumentVersion.document_id == doc_id)
        )
        or 0
    )


def _new_version(doc: Document, data: bytes, filename: str, actor: str) -> DocumentVersion:
    version = DocumentVersion(
        document_id=doc.id,
        number=_latest_number(doc.id) + 1,
        filename=filename,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        content=data,
        status=DocumentStatus.QUEUED,
        created_by=actor,
    )
    db.session.add(version)
    doc.status, doc.progress, doc.stage = DocumentStatus.QUEUED, 0, "waiting for a worker"
    doc.error = ""
    doc.updated_by = actor
    return version


# --- upload, replace, delete ----------------------------------------------------------


def add_document(
    data: bytes,
    filename: str,
    *,
    actor: str,
    settings: Settings,
    category: str = "",
    source: str | None = None,
    origin: str = "upload",
) -> DocumentVersion:
    """Check the file (it must open; no OCR yet) and record it as a new document, queued
    for indexing. Raises BadFile naming the problem, Conflict when the name is taken."""
    filename = clean_filename(filename)
    category = clean_category(category)
    source = source or filename
    doc_id = make_doc_id(source)
    if db.session.get(Document, doc_id) is not None:
        raise Conflict(f"a document named {doc_id!r} exists already: replace it instead", doc_id)
    parse_bytes(
        data, filename, source=source, category=category, limits=limits(settings), ocr=False
    )
    doc = Document(
        id=doc_id,
        source=source,
        title=Path(filename).stem,
        kind="faq" if check_suffix(filename) in {".csv", ".xlsx"} else "text",
        category=category,
        origin=origin,
        size_bytes=len(data),
        created_by=actor,
    )
    db.session.add(doc)
    db.session.flush()
    version = _new_version(doc, data, filename, actor)
    audit.record(actor, "upload", doc_id, filename=filename, size=len(data), category=category)
    db.session.commit()
    return version


def replace_document(
    doc_id: str,
    data: bytes,
    filename: str,
    *,
    actor: str,
    settings: Settings,
    category: str | None = None,
) -> DocumentVersion:
    """Queue a new version of an existing document; the current one is served until the
    new one is indexed (and stays if it fails)."""
    doc = get_document(doc_id)
    filename = clean_filename(filename)
    if category is not None:
        doc.category = clean_category(category)
    parse_bytes(
        data, filename, source=doc.source, category=doc.category, limits=limits(settings), ocr=False
    )
    version = _new_version(doc, data, filename, actor)
    doc.size_bytes = len(data)
    audit.record(
        actor, "replace", doc_id, filename=filename, size=len(data), version=version.number
    )
    db.session.commit()
    return version


def delete_document(doc_id: str, *, actor: str, store: KnowledgeStore, settings: Settings) -> int:
    """Remove a document and every one of its vectors; returns how many chunks went.

    Raises KnowledgeStoreError (and keeps the record) if Milvus still holds any afterwards.
    """
    with named_lock(WRITE_LOCK, lock_dir(settings)):
        db.session.expire_all()
        doc = get_document(doc_id)
        removed = store.delete_document(doc_id)
        left = store.count(doc_id=doc_id)
        if left:
            raise KnowledgeStoreError(f"{left} chunks of {doc_id!r} are still in Milvus")
        served = doc.version
        for version in versions_of(doc_id):
            db.session.delete(version)
        db.session.flush()  # versions first: they reference the document
        db.session.delete(doc)
        audit.record(actor, "delete", doc_id, chunks_removed=removed, version=served)
        db.session.commit()
    return removed


def mark_failed(doc_id: str, message: str) -> None:
    """Record on the document that its newest version will not be indexed (and why)."""
    doc = get_document(doc_id)
    doc.status, doc.error, doc.stage = DocumentStatus.FAILED, message, "failed"
    db.session.commit()


# --- indexing ---------------------------------------------------------------------------


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
    return version.number < _latest_number(version.document_id)


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


# --- the knowledge folder ---------------------------------------------------------------


def ingest_folder(
    store: KnowledgeStore,
    directory: Path,
    *,
    settings: Settings,
    actor: str = "cli",
    prune: bool = False,
) -> IngestReport:
    """Bring the documents of ``directory`` in (indexed here, not by a worker): new files are
    added, changed ones replaced, unchanged ones skipped by content hash; with ``prune``,
    documents whose file left the folder are deleted."""
    directory = Path(directory)
    if not directory.is_dir():
        raise NotADirectoryError(f"knowledge folder {directory} does not exist")
    store.ensure_collection()
    indexed = store.document_hashes()
    report = IngestReport()
    seen: set[str] = set()
    for path in iter_files(directory):
        source = relative_source(path, directory)
        item = DocumentReport(doc_id=make_doc_id(source), source=source)
        report.documents.append(item)
        seen.add(item.doc_id)
        data = path.read_bytes()
        item.sha256 = hashlib.sha256(data).hexdigest()
        doc = db.session.get(Document, item.doc_id)
        if (
            doc is not None
            and doc.status == DocumentStatus.INDEXED
            and doc.version > 0
            and doc.sha256 == item.sha256
            and indexed.get(item.doc_id) == item.sha256
        ):
            item.status, item.chunks, item.title, item.kind = (
                "unchanged",
                doc.chunk_count,
                doc.title,
                doc.kind,
            )
            continue
        try:
            if doc is None:
                version = add_document(
                    data, path.name, actor=actor, settings=settings, source=source, origin="folder"
                )
            else:
                version = replace_document(
                    item.doc_id, data, path.name, actor=actor, settings=settings
                )
        except UnsupportedFormat as exc:
            item.status, item.message = "skipped", str(exc)
            continue
        except BadFile as exc:
            db.session.rollback()
            item.status, item.message = "failed", str(exc)
            continue
        outcome = index_version(version.id, store, settings)
        doc = db.session.get(Document, item.doc_id)
        item.title, item.kind = doc.title, doc.kind
        item.chunks = doc.chunk_count
        done = outcome == DocumentStatus.INDEXED
        item.status = "indexed" if done else "failed"  # the folder report's own statuses
        item.message = doc.error if not done else ""
        item.warnings = [doc.error] if done and doc.error else []
    if prune:
        gone = select(Document).where(Document.origin == "folder", Document.id.not_in(seen))
        for doc in list(db.session.scalars(gone)):
            removed = delete_document(doc.id, actor=actor, store=store, settings=settings)
            report.documents.append(
                DocumentReport(doc_id=doc.id, source=doc.source, chunks=removed, status="deleted")
            )
    return report


# --- search and JSON shapes -------------------------------------------------------------


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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def document_dict(doc: Document) -> dict[str, Any]:
    return {
        "id": doc.id,
        "title": doc.title,
        "source": doc.source,
        "kind": doc.kind,
        "category": doc.category,
        "origin": doc.origin,
        "status": doc.status,
        "progress": doc.progress,
        "stage": doc.stage,
        "error": doc.error,
        "version": doc.version,
        "sha256": doc.sha256,
        "chunk_count": doc.chunk_count,
        "size_bytes": doc.size_bytes,
        "created_by": doc.created_by,
        "updated_by": doc.updated_by,
        "created_at": _iso(doc.created_at),
        "updated_at": _iso(doc.updated_at),
    }


def version_dict(version: DocumentVersion) -> dict[str, Any]:
    return {
        "number": version.number,
        "filename": version.filename,
        "sha256": version.sha256,
        "size_bytes": version.size_bytes,
        "status": version.status,
        "error": version.error,
        "chunk_count": version.chunk_count,
        "created_by": version.created_by,
        "created_at": _iso(version.created_at),
        "indexed_at": _iso(version.indexed_at),
    }


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
