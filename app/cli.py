"""`flask` commands: knowledge base, models, the all-in-one `serve`, the WeChat simulator."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.settings import Settings

kb = AppGroup("kb", help="Knowledge base: ingest and search.")
model = AppGroup("model", help="Chat model files.")


def _settings() -> Settings:
    return current_app.extensions["settings"]


@kb.command("ingest")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--prune", is_flag=True, help="Also remove documents no longer in the folder.")
@click.option("--if-empty", is_flag=True, help="Only ingest when the knowledge base is empty.")
def kb_ingest(directory: Path | None, prune: bool, if_empty: bool) -> None:
    """Index KNOWLEDGE_DIR (or --dir) into Milvus; unchanged documents are skipped."""
    from app import resources
    from app.services import knowledge

    settings = _settings()
    store = resources.knowledge_store(settings)
    if if_empty and store.count() > 0:
        click.echo(f"knowledge base already has {store.count()} chunks; skipping ingest")
        return
    report = knowledge.ingest(store, directory or settings.knowledge_dir, prune=prune)
    failed = 0
    for item in report.documents:
        click.echo(
            f"{item.status:>9}  {item.chunks:>4} chunks  {item.source}"
            + (f"  ({item.message})" if item.message else "")
        )
        failed += item.status == "failed"
    click.echo(f"{store.count()} chunks in collection {settings.milvus_collection!r}")
    if failed:
        sys.exit(1)


@kb.command("search")
@click.argument("query")
@click.option("-k", "top_k", default=5, show_default=True)
def kb_search(query: str, top_k: int) -> None:
    """Show the passages a question retrieves, with scores and sources."""
    from app import resources

    for hit in resources.knowledge_store(_settings()).search(query, top_k=top_k):
        click.echo(f"{hit.score:.4f}  {hit.source}  {hit.text[:80]!r}")


@model.command("list")
def model_list() -> None:
    """Models that `flask model pull` knows."""
    from app.llm.models import HUB_MODELS, OFFLINE_MODELS

    for m in OFFLINE_MODELS.values():
        click.echo(f"{m.name:<18} offline (PyPI parts)  {m.size / 1e9:.2f} GB  {m.filename}")
    for h in HUB_MODELS.values():
        click.echo(
            f"{h.name:<18} model hub            ~{h.approx_gb} GB  {h.repo}/{h.filename}"
            f"  (GPU: >= {h.min_vram_gb} GB VRAM for full offload)"
        )


@model.command("pull")
@click.argument("name", default="qwen2.5-1.5b")
def model_pull(name: str) -> None:
    """Fetch a model into MODELS_DIR and print the LLM_MODEL_PATH to use."""
    from app.llm.models import HUB_MODELS, OFFLINE_MODELS, pull_hub, pull_offline

    settings = _settings()
    if name in OFFLINE_MODELS:
        path = pull_offline(OFFLINE_MODELS[name], settings.models_dir, log=click.echo)
    elif name in HUB_MODELS:
        path = pull_hub(HUB_MODELS[name], settings.models_dir, log=click.echo)
    else:
        raise click.BadParameter(
            f"unknown model {name!r}; choose one of {', '.join([*OFFLINE_MODELS, *HUB_MODELS])}"
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


def register_commands(app: Flask) -> None:
    app.cli.add_command(kb)
    app.cli.add_command(model)
    app.cli.add_command(serve)
    try:
        from app.simulator.cli import wechat
    except ImportError:  # the simulator is optional tooling
        return
    app.cli.add_command(wechat)
