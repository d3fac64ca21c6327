"""`flask` commands: knowledge base, models, the all-in-one `serve`, the WeChat simulator."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.settings import Settings
from app.store.models import DocumentStatus, ReindexStatus

kb = AppGroup("kb", help="Knowledge base: upload, list, delete, replace, search, reindex.")
model = AppGroup("model", help="Chat model files.")
user = AppGroup("user", help="Staff accounts for the knowledge pages and API.")
apikey = AppGroup("apikey", help="API keys for Dify (tools, external knowledge, /v1).")


def _settings() -> Settings:
    return current_app.extensions["settings"]


def _actor(name: str | None) -> str:
    import getpass

    return name or f"cli:{getpass.getuser()}"


def _store():  # noqa: ANN202 - KnowledgeStore
    from app import resources

    return resources.knowledge_store(_settings())


def _kb_errors():  # noqa: ANN202 - the exceptions a kb command reports without a traceback
    from app.knowledge.sources import BadFile
    from app.knowledge.store import KnowledgeStoreError
    from app.services.knowledge import Conflict, NotFound
    from app.services.reindex import ReindexBusy

    return (BadFile, KnowledgeStoreError, Conflict, NotFound, ReindexBusy, NotADirectoryError)


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
    from app.knowledge.store import OutdatedCollection
    from app.services import knowledge

    settings = _settings()
    store = _store()
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
        report = knowledge.ingest_folder(
            store,
            directory or settings.knowledge_dir,
            settings=settings,
            actor=_actor(as_user),
            prune=prune,
        )
    except _kb_errors() as exc:
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
    from app.services import knowledge

    settings = _settings()
    store = _store()
    failed = 0
    for path in files:
        try:
            if not path.is_file():
                raise knowledge.BadFile(f"{path}: no such file")
            data = path.read_bytes()
            doc_id = knowledge.make_doc_id(knowledge.clean_filename(path.name))
            if replace and knowledge.exists(doc_id):
                version = knowledge.replace_document(
                    doc_id, data, path.name, actor=_actor(as_user), settings=settings
                )
            else:
                version = knowledge.add_document(
                    data, path.name, actor=_actor(as_user), settings=settings, category=category
                )
            outcome = knowledge.index_version(version.id, store, settings)
        except _kb_errors() as exc:
            click.echo(f"   failed  {path.name}: {exc}", err=True)
            failed += 1
            continue
        doc = knowledge.get_document(version.document_id)
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
    from app.services import knowledge

    settings = _settings()
    try:
        version = knowledge.replace_document(
            doc_id, file.read_bytes(), file.name, actor=_actor(as_user), settings=settings
        )
        outcome = knowledge.index_version(version.id, _store(), settings)
    except _kb_errors() as exc:
        raise click.ClickException(str(exc)) from None
    doc = knowledge.get_document(doc_id)
    click.echo(f"{outcome}: {doc_id} version {doc.version} serves, {doc.chunk_count} chunks")
    if outcome != DocumentStatus.INDEXED:
        raise click.ClickException(doc.error)


@kb.command("delete")
@click.argument("doc_ids", nargs=-1, required=True)
@click.option("--as", "as_user", help="Name recorded in the audit log.")
def kb_delete(doc_ids: tuple[str, ...], as_user: str | None) -> None:
    """Delete documents and every one of their vectors."""
    from app.services import knowledge

    for doc_id in doc_ids:
        try:
            removed = knowledge.delete_document(
                doc_id, actor=_actor(as_user), store=_store(), settings=_settings()
            )
        except _kb_errors() as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"deleted {doc_id} ({removed} chunks)")


@kb.command("list")
@click.option(
    "--status", help="Only documents in this state (queued, processing, indexed, failed)."
)
def kb_list(status: str | None) -> None:
    """Documents with their status, progress and version."""
    from app.services import knowledge

    docs = knowledge.list_documents(status=status)
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
    from app.services import knowledge

    try:
        hits = knowledge.search(
            _store(), query, top_k=top_k, category=category, doc_id=doc_id, mode=mode
        )
    except _kb_errors() as exc:
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
    from app.services.reindex import reindex

    click.echo("the knowledge collection was built by an older version: rebuilding it")
    run = reindex(store, settings, full=True, actor=_actor(as_user), trigger="upgrade")
    if run.status == ReindexStatus.FAILED:
        raise click.ClickException(f"rebuilding the knowledge collection failed: {run.error}")
    click.echo(f"rebuilt: {run.total} documents, {run.chunks} chunks in {run.collection}")


@kb.command("reindex")
@click.option("--full", is_flag=True, help="Parse and embed every document again.")
@click.option("--as", "as_user", help="Name recorded in the audit log.")
def kb_reindex(full: bool, as_user: str | None) -> None:
    """Blue/green rebuild: a new collection, verified, then the alias switched to it."""
    from app.services.reindex import reindex

    bar = click.progressbar(length=1, label="reindexing", show_pos=True, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.length = max(total, 1)
        bar.update(done - bar.pos)

    try:
        with bar:
            run = reindex(
                _store(), _settings(), full=full, actor=_actor(as_user), progress=progress
            )
    except _kb_errors() as exc:
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
    from app.services.reindex import recent_runs

    for run in recent_runs(limit, settings=_settings()):
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
    from app.services import audit

    for entry in audit.recent(limit):
        click.echo(
            f"{entry.at:%Y-%m-%d %H:%M:%S}  {entry.actor:<16} {entry.action:<12} {entry.target}"
        )


@user.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["staff", "admin"]), default="staff", show_default=True)
@click.password_option(
    help="Prompted for when not given (or set KB_NEW_PASSWORD).", envvar="KB_NEW_PASSWORD"
)
def user_create(username: str, role: str, password: str) -> None:
    """Create a staff or admin account for the knowledge pages and API."""
    from app.services import users

    try:
        users.create_user(username, password, role, actor=_actor(None))
    except users.UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {role} {username}")


@user.command("passwd")
@click.argument("username")
@click.password_option(envvar="KB_NEW_PASSWORD")
def user_passwd(username: str, password: str) -> None:
    """Set a user's password (signs out their sessions)."""
    from app.services import users

    try:
        users.set_password(username, password, actor=_actor(None))
    except users.UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"password of {username} changed")


@user.command("disable")
@click.argument("username")
@click.option("--enable", is_flag=True, help="Enable the account again instead.")
def user_disable(username: str, enable: bool) -> None:
    """Stop (or, with --enable, restore) a user's access."""
    from app.services import users

    try:
        users.set_active(username, enable, actor=_actor(None))
    except users.UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{username} {'enabled' if enable else 'disabled'}")


@user.command("list")
def user_list() -> None:
    """Accounts with their role and last login."""
    from app.services import users

    for u in users.all_users():
        last = f"{u.last_login_at:%Y-%m-%d %H:%M}" if u.last_login_at else "never"
        click.echo(f"{u.username:<24} {u.role:<6} {'active' if u.active else 'disabled':<9} {last}")


@model.command("list")
def model_list() -> None:
    """Models that `flask model pull` knows."""
    from app.llm.models import EMBEDDING_MODELS, HUB_MODELS, OFFLINE_MODELS

    for m in OFFLINE_MODELS.values():
        click.echo(f"{m.name:<18} offline (PyPI parts)  {m.size / 1e9:.2f} GB  {m.filename}")
    for h in HUB_MODELS.values():
        click.echo(
            f"{h.name:<18} model hub            ~{h.approx_gb} GB  {h.repo}/{h.filename}"
            f"  (GPU: >= {h.min_vram_gb} GB VRAM for full offload)"
        )
    for short, (repo, gb, dim) in EMBEDDING_MODELS.items():
        click.echo(f"{short:<18} model hub            ~{gb} GB  {repo} (embedding, {dim} dims)")


@model.command("pull")
@click.argument("name", default="qwen2.5-1.5b")
def model_pull(name: str) -> None:
    """Fetch a model into MODELS_DIR and print the setting that uses it (LLM_MODEL_PATH or
    EMBEDDING_MODEL)."""
    from app.llm.models import (
        EMBEDDING_MODELS,
        HUB_MODELS,
        OFFLINE_MODELS,
        embedding_repo,
        pull_embedding,
        pull_hub,
        pull_offline,
    )

    settings = _settings()
    hub_hint = "a model hub must be reachable (HF_ENDPOINT selects a mirror)"
    if repo := embedding_repo(name):
        try:
            pull_embedding(repo, settings.models_dir, log=click.echo)
        except Exception as exc:  # noqa: BLE001 - no network, no such file, disk full
            raise click.ClickException(f"cannot download {repo}: {exc}; {hub_hint}") from None
        click.echo(f"EMBEDDING_MODEL={repo}  (then `flask kb reindex`)")
        return
    if name in OFFLINE_MODELS:
        path = pull_offline(OFFLINE_MODELS[name], settings.models_dir, log=click.echo)
    elif name in HUB_MODELS:
        try:
            path = pull_hub(HUB_MODELS[name], settings.models_dir, log=click.echo)
        except Exception as exc:  # noqa: BLE001 - no network, no such file, disk full
            raise click.ClickException(f"cannot download {name}: {exc}; {hub_hint}") from None
    else:
        raise click.BadParameter(
            f"unknown model {name!r}; choose one of "
            + ", ".join([*OFFLINE_MODELS, *HUB_MODELS, *EMBEDDING_MODELS])
        )
    click.echo(f"LLM_MODEL_PATH={path}")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--web-workers", default=2, show_default=True)
@click.option("--llm-workers", default=1, show_default=True)
@click.option(
    "--simulator-port",
    default=9100,
    show_default=True,
    help="where demo mode runs the WeChat simulator",
)
def serve(host: str, port: int, web_workers: int, llm_workers: int, simulator_port: int) -> None:
    """Run everything in the foreground: Milvus, web, workers, scheduler. Ctrl-C stops all."""
    from app.supervisor import run_all

    sys.exit(
        run_all(
            _settings(),
            host=host,
            port=port,
            web_workers=web_workers,
            llm_workers=llm_workers,
            simulator_port=simulator_port,
        )
    )


@apikey.command("create")
@click.argument("name")
def apikey_create(name: str) -> None:
    """Create a key named NAME and print it (shown this once only)."""
    from app.services import apikeys

    try:
        row, plaintext = apikeys.create(name)
    except apikeys.ApiKeyError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created API key {row.id} ({row.name}); copy it now, it is not shown again:")
    click.echo(plaintext)


@apikey.command("list")
def apikey_list() -> None:
    """List keys: id, prefix, name, created, revoked."""
    from app.services import apikeys

    rows = apikeys.list_keys()
    if not rows:
        click.echo("no API keys (create one with `flask apikey create NAME`)")
    for r in rows:
        state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
        click.echo(f"{r.id:>4}  {r.prefix}…  {state:<24}  {r.created_at:%Y-%m-%d}  {r.name}")


@apikey.command("revoke")
@click.argument("key_id")
def apikey_revoke(key_id: str) -> None:
    """Revoke a key by id (or its shown prefix); requests with it get 401 within
    API_KEY_CACHE_S seconds (5 by default)."""
    from app.services import apikeys

    try:
        row = apikeys.revoke(key_id)
    except apikeys.ApiKeyError as exc:
        raise click.ClickException(str(exc)) from None
    trust_s = current_app.extensions["settings"].api_key_cache_s
    click.echo(f"revoked API key {row.id} ({row.name}); it stops working within {trust_s:g} s")


def register_commands(app: Flask) -> None:
    from app.faq.commands import faq
    from app.layout import layout_cli
    from app.settings.readme import settings_cli

    app.cli.add_command(faq)
    app.cli.add_command(settings_cli)
    app.cli.add_command(kb)
    app.cli.add_command(apikey)
    app.cli.add_command(model)
    app.cli.add_command(user)
    app.cli.add_command(serve)
    app.cli.add_command(layout_cli)
    try:
        from app.simulator.cli import wechat
        from app.simulator.wecom_cli import wecom
    except ImportError:  # the simulator is optional tooling
        return
    app.cli.add_command(wechat)
    app.cli.add_command(wecom)
