"""Indexing the knowledge folder and keeping the documents table in step with Milvus."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from app.extensions import db
from app.knowledge.ingest import IngestReport, ingest_directory
from app.knowledge.store import KnowledgeStore
from app.store import Document


def ingest(store: KnowledgeStore, directory: Path, *, prune: bool = False) -> IngestReport:
    known = {d.id: d.sha256 for d in db.session.scalars(select(Document)) if d.status == "indexed"}
    store.ensure_collection()
    report = ingest_directory(store, directory, known_hashes=known, prune=prune)
    for item in report.documents:
        row = db.session.get(Document, item.doc_id)
        if item.status == "skipped":  # not a knowledge file (unsupported type, README)
            continue
        if item.status == "deleted":
            if row is not None:
                db.session.delete(row)
            continue
        if row is None:
            row = Document(id=item.doc_id)
            db.session.add(row)
        row.source, row.title, row.kind = item.source, item.title, item.kind
        if item.status == "failed":
            row.status, row.error = "failed", item.message
            continue
        row.sha256, row.status, row.error = item.sha256, "indexed", ""
        if item.status == "indexed" or not row.chunk_count:
            row.chunk_count = item.chunks or store.count(doc_id=item.doc_id)
    db.session.commit()
    return report
