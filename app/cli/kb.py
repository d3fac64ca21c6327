"""`flask kb ...`: the knowledge base's documents (ingest, upload, replace, delete, list,
search), its blue/green reindex and its audit log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from flask.cli import AppGroup

from app.cli.common import actor_name, app_settings, kb_errors, knowledge_store
from app.store.models import DocumentStatus, ReindexStatus

kb = AppGroup("kb", help="Knowledge base: upload, list, delete, replace, search, reindex.")


def _print_reports(items: list) -> int:  # noqa: ANN001
    failed = 0
    for item in items:
        click.echo(
            f"{item.status:>9}  {item.chunks:>4} chunks  {item.source}"
            + (f"  ({item.message})" if item.message else "")
        )
        failed += item.status == "failed"
    return failed


@kb.command("ingest")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--prune", is_flag=True, help="Also remove documents no longer in the folder.")
@click.option("--if-empty", is_flag=True, help="Only ingest when the knowledge base is empty.")
@click.option("--as", "as_user", help="Name recorded in the audit log.")
def kb_ingest(directory: Path | None, prune: bool, if_empty: bool, as_user: str | None) -> None:
    """Index KNOWLEDGE_DIR (or --dir); unchanged documents are skipped by content hash."""
    from app.knowledge.folder import ingest_folder
    from app.knowledge.store import OutdatedCollection

    settings = app_settings()
    store = knowledge_store()
    try:
        try:
            count = store.count()
        except OutdatedCollection:
            # Built by an older version of the app: rebuilt from the stored documents
            # (blue/green), and the folder ingested into the new collection after that.
            _rebuild(store, settings, as_user)
            count = store.count()
        if if_empty and count > 0:
            click.echo(f"knowledge base already has {count} chunks; skipping ingest")
            return
        report = ingest_folder(
            store,
            directory or settings.knowledge_dir,
            settings=settings,
            actor=actor_name(as_user),
            prune=prune,
        )
    except kb_errors() as exc:
        raise click.ClickException(str(exc)) from None
    failed = _print_reports(report.documents)
    click.echo(f"{store.count()} chunks in collection {settings.milvus_collection!r}")
    if failed:
        sys.exit(1)


@kb.command("upload")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--category", default="", help="Category of the uploaded documents.")
@click.option("--replace", is_flag=True, help="Replace documents of the same name.")
@click.option("--as", "as_user", help="Name recorded in the audit log.")
def kb_upload(files: tuple[Path, ...], category: str, replace: bool, as_user: str | None) -> None:
    """Add documents (FAQ csv/xlsx, docx, pdf, md, txt, html, images) and index them now."""
    from app.knowledge.documents import (
        add_document,
        clean_filename,
        exists,
        get_document,
        replace_document,
    )
    from app.knowledge.indexing import index_version
    from app.knowledge.sources import BadFile, make_doc_id

    settings = app_settings()
    store = knowledge_store()
    failed = 0
    for path in files:
        try:
            if not path.is_file():
                raise BadFile(f"{path}: no such file")
            data = path.read_bytes()
            doc_id = make_doc_id(clean_filename(path.name))
            if replace and exists(doc_id):
                version = replace_document(
                    doc_id, data, path.name, actor=actor_name(as_user), settings=settings
                )
            else:
                version = add_document(
                    data, path.name, actor=actor_name(as_user), settings=settings, category=category
                )
            outcome = index_version(version.id, store, settings)
        except kb_errors() as exc:
            click.echo(f"   failed  {path.name}: {exc}", err=True)
            failed += 1
            continue
        doc = get_document(version.document_id)
        click.echo(
            f"{outcome:>9}  {doc.chunk_count:>4} chunks  {doc.id}  (version {version.number})"
            + (f"  {doc.error}" if doc.error else "")
        )
        failed += outcome != DocumentStatus.INDEXED
    if failed:
        sys.exit(1)


@kb.command("replace")
@click.argument("doc_id")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--as", "as_user", help="Name recorded in the audit log.")
def kb_replace(doc_id: str, file: Path, as_user: str | None) -> None:
    """Replace DOC_ID with FILE; the old version serves until the new one is indexed."""
    from app.knowledge.documents import get_document, replace_document
    from app.knowledge.indexing import index_version

    settings = app_settings()
    try:
        version = replace_document(
            doc_id, file.read_bytes(), file.name, actor=actor_name(as_user), settings=settings
        )
        outcome = index_version(version.id, knowledge_store(), settings)
    except kb_errors() as exc:
        raise click.ClickException(str(exc)) from None
    doc = get_document(doc_id)
    click.echo(f"{outcome}: {doc_id} version {doc.version} serves, {doc.chunk_count} chunks")
    if outcome != DocumentStatus.INDEXED:
        raise click.ClickException(doc.error)


@kb.command("delete")
@click.argument("doc_ids", nargs=-1, required=True)
@click.option("--as", "as_user", help="Name recorded in the audit log.")
def kb_delete(doc_ids: tuple[str, ...], as_user: str | None) -> None:
    """Delete documents and every one of their vectors."""
    from app.knowledge.documents import delete_document

    for doc_id in doc_ids:
        try:
            removed = delete_document(
                doc_id, actor=actor_name(as_user), store=knowledge_store(), settings=app_settings()
            )
        except kb_errors() as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"deleted {doc_id} ({removed} chunks)")


@kb.command("list")
@click.option(
    "--status", help="Only documents in this state (queued, processing, indexed, failed)."
)
def kb_list(status: str | None) -> None:
    """Documents with their status, progress and version."""
    from app.knowledge.documents import list_documents

    docs = list_documents(status=status)
    for doc in docs:
        state = doc.status
        if doc.status == DocumentStatus.PROCESSING:
            state = f"{doc.status} {doc.progress}%"
        click.echo(
            f"{state:>15}  v{doc.version:<3} {doc.chunk_count:>5} chunks  {doc.category or '-':<8}"
            f"  {doc.id}" + (f"  ({doc.error})" if doc.error else "")
        )
    click.echo(f"{len(docs)} documents")


@kb.command("search")
@click.argument("query")
@click.option("-k", "top_k", default=5, show_default=True)
@click.option("--category", help="Only passages of this category.")
@click.option("--document", "doc_id", help="Only passages of this document id.")
@click.option("--mode", type=click.Choice(["hybrid", "dense", "bm25"]), default="hybrid")
def kb_search(query: str, top_k: int, category: str | None, doc_id: str | None, mode: str) -> None:
    """Show the passages a question retrieves, with scores and sources."""
    from app.knowledge.lookup import search

    try:
        hits = search(
            knowledge_store(), query, top_k=top_k, category=category, doc_id=doc_id, mode=mode
        )
    except kb_errors() as exc:
        raise click.ClickException(str(exc)) from None
    for hit in hits:
        page = hit.metadata.get("page")
        where = (
            hit.source
            + (f" p.{page}" if page else "")
            + (f" § {hit.section}" if hit.section else "")
        )
        click.echo(f"{hit.score:.4f}  {where}  {hit.text[:80]!r}")


def _rebuild(store: Any, settings: Any, as_user: str | None) -> None:
    from app.knowledge.reindex import reindex

    click.echo("the knowledge collection was built by an older version: rebuilding it")
    run = reindex(store, settings, full=True, actor=actor_name(as_user), trigger="upgrade")
    if run.status == ReindexStatus.FAILED:
        raise click.ClickException(f"rebuilding the knowledge collection failed: {run.error}")
    click.echo(f"rebuilt: {run.total} documents, {run.chunks} chunks in {run.collection}")


@kb.command("reindex")
@click.option("--full", is_flag=True, help="Parse and embed every document again.")
@click.option("--as", "as_user", help="Name recorded in the audit log.")
def kb_reindex(full: bool, as_user: str | None) -> None:
    """Blue/green rebuild: a new collection, verified, then the alias switched to it."""
    from app.knowledge.reindex import reindex

    bar = click.progressbar(length=1, label="reindexing", show_pos=True, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.length = max(total, 1)
        bar.update(done - bar.pos)

    try:
        with bar:
            run = reindex(
                knowledge_store(),
                app_settings(),
                full=full,
                actor=actor_name(as_user),
                progress=progress,
            )
    except kb_errors() as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{run.status}: {run.total} documents ({run.reused} reused, {run.rebuilt} rebuilt, "
        f"{run.failed} failed), {run.chunks} chunks in {run.collection}"
    )
    if run.status == ReindexStatus.FAILED:
        raise click.ClickException(run.error)


@kb.command("reindex-status")
@click.option("-n", "limit", default=10, show_default=True)
def kb_reindex_status(limit: int) -> None:
    """Recent reindex runs, newest first; a run whose process died shows abandoned."""
    from app.knowledge.reindex import recent_runs

    for run in recent_runs(limit, settings=app_settings()):
        finished = f"{run.finished_at:%Y-%m-%d %H:%M:%S}" if run.finished_at else "-"
        click.echo(
            f"{run.id:>5}  {run.status:<10} {run.trigger:<8} {run.done:>5}/{run.total:<5}"
            f"  {run.started_at:%Y-%m-%d %H:%M:%S}  {finished:<19}  {run.actor}"
            + (f"  ({run.error})" if run.error else "")
        )


@kb.command("audit")
@click.option("-n", "limit", default=30, show_default=True)
def kb_audit(limit: int) -> None:
    """Recent changes and who made them."""
    from app.accounts import audit

    for entry in audit.recent(limit):
        click.echo(
            f"{entry.at:%Y-%m-%d %H:%M:%S}  {entry.actor:<16} {entry.action:<12} {entry.target}"
        )
