"""Bringing the knowledge folder and the collection into step, one document at a time.

Safe to run again and again: a document whose bytes did not change is skipped, a changed one
is replaced by writing its new chunks first and only then deleting the chunks it no longer
has, so a search running meanwhile sees the old or the new version, never neither. One bad
file is reported and the others still go in.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from app.knowledge.chunking import DEFAULT_MAX_CHARS, DEFAULT_OVERLAP, chunk_document
from app.knowledge.sources import (
    SUPPORTED_SUFFIXES,
    BadFile,
    UnsupportedFormat,
    load_document,
    make_doc_id,
    relative_source,
)
from app.knowledge.store import KnowledgeStore

Status = Literal["indexed", "unchanged", "failed", "skipped", "deleted"]

# Files that describe the folder rather than the shop, and editor/OS litter.
DEFAULT_EXCLUDE: tuple[str, ...] = ("readme.md", "readme.txt", "~$*", ".*", "*.tmp", "*.bak")


@dataclass
class DocumentReport:
    """What happened to one file. ``chunks`` is the document's chunk count (for ``deleted``:
    the number removed)."""

    doc_id: str
    source: str
    title: str = ""
    kind: str = ""
    sha256: str = ""
    chunks: int = 0
    status: Status = "indexed"
    message: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass
class IngestReport:
    """Per-document outcome of one ingest run."""

    documents: list[DocumentReport] = field(default_factory=list)

    def by_status(self, status: Status) -> list[DocumentReport]:
        return [d for d in self.documents if d.status == status]

    @property
    def ok(self) -> bool:
        """False when any document failed."""
        return not self.by_status("failed")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the admin pages and task results."""
        return {"ok": self.ok, "documents": [asdict(d) for d in self.documents]}


def _excluded(relative: str, patterns: Iterable[str]) -> bool:
    parts = relative.split("/")
    for pattern in patterns:
        pat = pattern.lower()
        if any(fnmatch.fnmatch(p.lower(), pat) for p in parts):
            return True
    return False


def iter_files(directory: Path, exclude: Iterable[str] = DEFAULT_EXCLUDE) -> list[Path]:
    """Every file under ``directory`` (recursively, sorted), minus the excluded names."""
    patterns = tuple(exclude)
    return sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and not _excluded(p.relative_to(directory).as_posix(), patterns)
    )


def ingest_file(
    store: KnowledgeStore,
    path: Path,
    directory: Path,
    *,
    known_hash: str | None = None,
    indexed_hash: str | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    overlap: int = DEFAULT_OVERLAP,
    flush: bool = True,
) -> DocumentReport:
    """Index one file of the knowledge folder ``directory``; never raises for a bad file.

    The document is skipped only when its sha256 equals both ``known_hash`` (the caller's
    record) and ``indexed_hash`` (what the collection was built from), so a wiped Milvus
    or a stale record both lead to re-indexing. Pass ``indexed_hash=None`` to look it up.
    """
    source = relative_source(path, directory)
    report = DocumentReport(doc_id=make_doc_id(source), source=source)
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        report.status = "skipped"
        report.message = f"unsupported file type {path.suffix.lower() or '(none)'}"
        return report
    try:
        doc = load_document(path, directory)
        report.title, report.kind, report.sha256 = doc.title, doc.kind, doc.sha256
        report.warnings = list(doc.warnings)
        chunks = chunk_document(doc, max_chars=max_chars, overlap=overlap)
        report.chunks = len(chunks)
        if known_hash == doc.sha256:
            if indexed_hash is None:
                indexed_hash = store.document_hashes().get(doc.doc_id)
            if indexed_hash == doc.sha256:
                report.status = "unchanged"
                return report
        stale = store.chunk_ids(doc.doc_id) - {c.chunk_id for c in chunks}
        store.upsert_chunks(chunks, flush=flush)
        store.delete_chunks(stale, flush=flush)
        report.status = "indexed"
    except UnsupportedFormat as exc:
        report.status, report.message = "skipped", str(exc)
    except BadFile as exc:
        report.status, report.message = "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
        report.status, report.message = "failed", f"{type(exc).__name__}: {exc}"
    return report


def ingest_directory(
    store: KnowledgeStore,
    directory: Path,
    *,
    known_hashes: dict[str, str] | None = None,
    prune: bool = False,
    exclude: Iterable[str] = DEFAULT_EXCLUDE,
    max_chars: int = DEFAULT_MAX_CHARS,
    overlap: int = DEFAULT_OVERLAP,
) -> IngestReport:
    """Index every supported file under ``directory``.

    ``known_hashes`` (doc_id -> sha256) is the caller's record of indexed versions; None
    trusts the hashes stored in the collection, ``{}`` forces a full re-index (vectors of
    unchanged chunks are still reused). With ``prune`` documents whose file is gone are
    deleted from the collection.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise NotADirectoryError(f"knowledge folder {directory} does not exist")
    store.ensure_collection()
    indexed = store.document_hashes()
    known = indexed if known_hashes is None else known_hashes
    report = IngestReport()
    seen: set[str] = set()
    for path in iter_files(directory, exclude):
        item = ingest_file(
            store,
            path,
            directory,
            known_hash=known.get(make_doc_id(relative_source(path, directory))),
            indexed_hash=indexed.get(make_doc_id(relative_source(path, directory)), ""),
            max_chars=max_chars,
            overlap=overlap,
            flush=False,
        )
        seen.add(item.doc_id)
        report.documents.append(item)
    if prune:
        for doc_id in sorted((set(indexed) | set(known)) - seen):
            removed = store.delete_document(doc_id, flush=False)
            report.documents.append(
                DocumentReport(doc_id=doc_id, source=doc_id, chunks=removed, status="deleted")
            )
    store.flush()
    return report
