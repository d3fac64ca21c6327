"""Knowledge documents through their life: upload, replace, delete, and their records.

The documents table is the record: every uploaded file is a `DocumentVersion` with its
bytes, and `Document.version` names the one readers are served; a new version is queued
for indexing (app/knowledge/indexing.py) and served once it is indexed. Writes to Milvus
hold the cross-process "kb-write" lock (``WRITE_LOCK``), which a reindex takes for its
final catch-up and alias switch, so no change is lost between the two. Every change is in
the audit log with who made it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app import errors
from app.accounts import audit
from app.extensions import db
from app.knowledge.sources import BadFile, make_doc_id, parse_bytes
from app.knowledge.store import KnowledgeStore, KnowledgeStoreError
from app.knowledge.validation import Limits, check_suffix
from app.settings import Settings
from app.store import Document, DocumentStatus, DocumentVersion
from app.store.locks import named_lock

WRITE_LOCK = "kb-write"
MAX_FILENAME = 200
MAX_CATEGORY = 64


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


def latest_number(doc_id: str) -> int:
    return int(
        db.session.scalar(
            select(func.max(DocumentVersion.number)).where(DocumentVersion.document_id == doc_id)
        )
        or 0
    )


def _new_version(doc: Document, data: bytes, filename: str, actor: str) -> DocumentVersion:
    version = DocumentVersion(
        document_id=doc.id,
        number=latest_number(doc.id) + 1,
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


# --- JSON shapes ------------------------------------------------------------------------


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
        "enabled": doc.enabled,
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
