"""The knowledge folder (KNOWLEDGE_DIR) brought into the documents table: `flask kb ingest`.

Every file becomes a document with its versions and audit entries, as an upload does, and
is indexed here, not by a worker: new files are added, changed ones replaced, unchanged ones
skipped by content hash. (app/knowledge/ingest.py brings a folder into a collection
without the documents table: the tests' and the benches' way.)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import select

from app.extensions import db
from app.knowledge.documents import add_document, delete_document, replace_document
from app.knowledge.indexing import index_version
from app.knowledge.ingest import DocumentReport, IngestReport, iter_files
from app.knowledge.sources import BadFile, make_doc_id, relative_source
from app.knowledge.store import KnowledgeStore
from app.knowledge.validation import UnsupportedFormat
from app.settings import Settings
from app.store import Document, DocumentStatus


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
