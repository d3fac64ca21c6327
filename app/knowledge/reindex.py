"""Blue/green rebuild of the knowledge collection.

Readers always go through the Milvus alias (MILVUS_COLLECTION). A reindex builds a new
collection beside the serving one, verifies it against the documents table, and only then
points the alias at it and drops the old one. Until that one-step switch nothing readers see
changes, so a reindex that fails, or is killed at any point, leaves the old index serving;
the next run drops its half-built collection.

A run holds the reindex lock (a PostgreSQL advisory lock, or a file lock with SQLite) for
its whole life, and the lock dies with its process: a run still marked running while
nobody holds the lock is a dead one. Reading the runs (the API, ``flask kb
reindex-status``) marks such runs abandoned at once, so a killed run is not shown running
until the next one starts.

Incremental: a document whose served version is already in the old collection with the same
content hash (and the same embedding model) is copied over with its vectors, not parsed and
embedded again; a run that finds nothing to change switches nothing. ``full`` rebuilds all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select

from app.accounts import audit
from app.errors import shown_text
from app.extensions import db
from app.knowledge.documents import WRITE_LOCK, lock_dir
from app.knowledge.indexing import parse_version
from app.knowledge.sources import BadFile
from app.knowledge.store import KnowledgeStore, KnowledgeStoreError
from app.settings import Settings
from app.store import Document, DocumentVersion, ReindexRun, ReindexStatus
from app.store.locks import named_lock

log = logging.getLogger(__name__)

REINDEX_LOCK = "kb-reindex"
Progress = Callable[[int, int], None]
#: How long a reindex waits for the lock before it says another one runs: a reader
#: checking for dead runs holds it for a moment (``reap_dead_runs``).
LOCK_PATIENCE_S = 2.0
DIED = "its process stopped before it finished"


class ReindexBusy(RuntimeError):
    """Another reindex holds the lock."""


def served_documents() -> dict[str, tuple[int, str]]:
    """doc_id -> (served version id, its sha256) for every document readers should find."""
    rows = db.session.execute(
        select(Document.id, DocumentVersion.id, DocumentVersion.sha256)
        .join(
            DocumentVersion,
            (DocumentVersion.document_id == Document.id)
            & (DocumentVersion.number == Document.version),
        )
        .where(Document.version > 0)
    )
    return {doc_id: (version_id, sha) for doc_id, version_id, sha in rows}


def _blue_state(store: KnowledgeStore) -> tuple[str | None, dict[str, str], bool]:
    """(serving collection, its doc hashes, whether its vectors can be reused)."""
    blue = store.physical_name()
    if blue is None:
        return None, {}, False
    if store.embedding_model() != store.embedder.name:
        return blue, {}, False
    try:
        return blue, store.document_hashes(), True
    except KnowledgeStoreError:
        return blue, {}, False


def _bring_over(
    store: KnowledgeStore,
    green: KnowledgeStore,
    doc_id: str,
    version_id: int,
    sha: str,
    blue_hashes: dict[str, str],
    reusable: bool,
    settings: Settings,
) -> str:
    """Put one document into ``green``: copied (reused), parsed anew (rebuilt), or, if its
    file cannot be parsed any more, copied as it is served now (failed)."""
    if reusable and blue_hashes.get(doc_id) == sha:
        green.import_rows(store.export_rows(doc_id))
        return "reused"
    version = db.session.get(DocumentVersion, version_id)
    doc = db.session.get(Document, doc_id)
    try:
        if version is None or doc is None or not version.content:
            raise BadFile(f"{doc_id}: the stored file of the served version is missing")
        _parsed, chunks = parse_version(version, doc, settings)
    except BadFile as exc:
        log.warning("reindex: %s", exc)
        if reusable and doc_id in blue_hashes:
            green.import_rows(store.export_rows(doc_id))
        return "failed"
    green.upsert_chunks(chunks, flush=False)
    return "rebuilt"


def _verify(green: KnowledgeStore, expected: dict[str, tuple[int, str]]) -> None:
    hashes = green.document_hashes()
    missing = sorted(set(expected) - set(hashes))
    extra = sorted(set(hashes) - set(expected))
    if missing or extra:
        raise KnowledgeStoreError(
            f"new collection does not match the documents (missing {missing[:5]}, "
            f"unexpected {extra[:5]})"
        )
    if expected and green.count() == 0:
        raise KnowledgeStoreError("new collection is empty")
    if expected:
        green.search("test", 1)  # loaded, indexed and answering


def _finish(run: ReindexRun, status: str, error: str = "") -> ReindexRun:
    run.status, run.error, run.finished_at = status, error[:4000], datetime.now(UTC)
    db.session.commit()
    return run


def reindex(
    store: KnowledgeStore,
    settings: Settings,
    *,
    full: bool = False,
    trigger: str = "cli",
    actor: str = "cli",
    progress: Progress | None = None,
) -> ReindexRun:
    """Rebuild the collection behind the alias; returns the run (succeeded, up_to_date or
    failed). Raises ReindexBusy when another reindex is running."""
    deadline = time.monotonic() + LOCK_PATIENCE_S
    while True:
        with named_lock(REINDEX_LOCK, lock_dir(settings), wait=False) as got:
            if got:
                return _reindex_locked(store, settings, full, trigger, actor, progress)
        if time.monotonic() >= deadline:
            raise ReindexBusy("another reindex is running; try again when it has finished")
        time.sleep(0.1)


def reap_dead_runs(settings: Settings) -> int:
    """Marks ``abandoned`` every run still marked running whose process is gone, and
    returns how many. A live run holds the reindex lock; when the lock is free, every run
    marked running died (killed, crashed, its machine gone) before it could say so."""
    running = ReindexRun.status == ReindexStatus.RUNNING
    if db.session.scalar(select(ReindexRun.id).where(running)) is None:
        db.session.rollback()
        return 0
    with named_lock(REINDEX_LOCK, lock_dir(settings), wait=False) as got:
        if not got:  # a reindex is running now
            db.session.rollback()
            return 0
        db.session.expire_all()
        dead = list(db.session.scalars(select(ReindexRun).where(running)))
        for run in dead:
            log.warning("reindex run %s was left running by a process that died", run.id)
            _finish(run, ReindexStatus.ABANDONED, DIED)
        return len(dead)


def _reindex_locked(
    store: KnowledgeStore,
    settings: Settings,
    full: bool,
    trigger: str,
    actor: str,
    progress: Progress | None,
) -> ReindexRun:
    # We hold the lock, so a run still marked running died with its process.
    running = ReindexRun.status == ReindexStatus.RUNNING
    for dead in db.session.scalars(select(ReindexRun).where(running)):
        _finish(dead, ReindexStatus.ABANDONED, DIED)
    serving = store.physical_name()
    for spare in store.builds():
        if spare != serving:
            log.info("reindex: dropping %s, left by an earlier run", spare)
            store.drop_physical(spare)

    docs = served_documents()
    blue, blue_hashes, reusable = _blue_state(store)
    run = ReindexRun(trigger=trigger, actor=actor, full=full, total=len(docs))
    db.session.add(run)
    db.session.commit()
    aliased = blue is not None and blue != store.collection
    if (
        not full
        and aliased
        and reusable
        and blue_hashes == {d: sha for d, (_v, sha) in docs.items()}
    ):
        run.done, run.reused, run.collection = len(docs), len(docs), blue or ""
        run.chunks = store.count()
        if progress is not None:
            progress(len(docs), len(docs))
        return _finish(run, ReindexStatus.UP_TO_DATE)

    green = store.build_store()
    run.collection = green.collection
    db.session.commit()
    try:
        green.ensure_collection()
        use_blue = reusable and not full
        for doc_id, (version_id, sha) in sorted(docs.items()):
            outcome = _bring_over(
                store, green, doc_id, version_id, sha, blue_hashes, use_blue, settings
            )
            run.done += 1
            setattr(run, outcome, getattr(run, outcome) + 1)
            db.session.commit()
            if progress is not None:
                progress(run.done, run.total)
        green.flush()
        with named_lock(WRITE_LOCK, lock_dir(settings)):
            # Changes made while we built (uploads, replacements, deletions) go in now;
            # index tasks wait for the switch, then write to the new collection.
            db.session.expire_all()
            now = served_documents()
            _, blue_hashes, reusable = _blue_state(store)
            built = green.document_hashes()
            for doc_id in set(built) - set(now):
                green.delete_document(doc_id, flush=False)
            for doc_id, (version_id, sha) in now.items():
                if built.get(doc_id) != sha:
                    green.delete_document(doc_id, flush=False)
                    _bring_over(
                        store, green, doc_id, version_id, sha, blue_hashes, reusable, settings
                    )
            green.flush()
            _verify(green, now)
            previous = store.switch_alias(green.collection)
            run.chunks = green.count()
            audit.record(
                actor,
                "reindex",
                store.collection,
                collection=green.collection,
                previous=previous,
                full=full,
                reused=run.reused,
                rebuilt=run.rebuilt,
                failed=run.failed,
            )
            db.session.commit()
        if previous and previous != store.collection and previous != green.collection:
            store.drop_physical(previous)
        return _finish(run, ReindexStatus.SUCCEEDED)
    except Exception as exc:  # noqa: BLE001 - any failure leaves the old index serving
        db.session.rollback()
        log.exception("reindex failed; %s still serves", blue)
        try:
            if green.collection != store.physical_name():
                store.drop_physical(green.collection)
        except Exception:  # noqa: BLE001 - the next run drops it
            log.exception("could not drop %s", green.collection)
        run = db.session.get(ReindexRun, run.id)
        # Shown on the admin page: the log above has the exception itself.
        why = shown_text(exc, "an internal error (the log has it)")
        return _finish(run, ReindexStatus.FAILED, why)


def run_dict(run: ReindexRun) -> dict[str, object]:
    return {
        "id": run.id,
        "status": run.status,
        "trigger": run.trigger,
        "actor": run.actor,
        "full": run.full,
        "collection": run.collection,
        "total": run.total,
        "done": run.done,
        "progress": round(100 * run.done / run.total) if run.total else 100,
        "reused": run.reused,
        "rebuilt": run.rebuilt,
        "failed": run.failed,
        "chunks": run.chunks,
        "error": run.error,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def recent_runs(limit: int = 20, settings: Settings | None = None) -> list[ReindexRun]:
    """The latest runs, newest first; with ``settings``, dead runs are marked first."""
    if settings is not None:
        reap_dead_runs(settings)
    return list(db.session.scalars(select(ReindexRun).order_by(ReindexRun.id.desc()).limit(limit)))
