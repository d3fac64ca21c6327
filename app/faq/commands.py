"""`flask faq`: see what a question matches, and calibrate the thresholds for an embedder."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from app import resources
from app.faq import calibration
from app.faq.matching import Thresholds, verdict

faq = AppGroup("faq", help="FAQ answers by meaning: match a question, calibrate thresholds.")


@faq.command("match")
@click.argument("question")
@click.option("--top", default=3, show_default=True, help="Entries to show.")
def faq_match(question: str, top: int) -> None:
    """The FAQ entries nearest to QUESTION, with their evidence and verdict."""
    settings = current_app.extensions["settings"]
    matcher = resources.faq_matcher(settings)
    best = matcher.best(question)
    if best is not None and best.evidence.characters:
        click.echo(f"verbatim (by characters): {best.entry.question}")
        return
    shown = matcher.nearest(question, top)
    if not shown:
        click.echo("no FAQ entries (or no thresholds for this embedder: `flask faq calibrate`)")
    for m in shown:
        ev = m.evidence
        click.echo(
            f"{m.verdict:8} match {ev.match:.3f}  gap {ev.gap:+.3f}  similarity "
            f"{ev.similarity:.3f}  {ev.entry.question}"
        )


@faq.command("calibrate")
@click.option(
    "--questions",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='JSON lines {"q": "...", "faq": "<FAQ question that answers it, or null>"}: '
    "real customers' questions, labelled.",
)
@click.option(
    "--max-wrong",
    default=0.01,
    show_default=True,
    help="Share of all questions that may get a wrong entry's answer verbatim.",
)
@click.option("--near", default=None, type=float, help="The 'near' cosine (default: kept).")
def faq_calibrate(questions: Path | None, max_wrong: float, near: float | None) -> None:
    """Derive FAQ_MATCH_THRESHOLDS for the configured embedder from the knowledge base's
    own FAQ (its listed paraphrases, each asked with itself and with its whole entry left
    out) and, with --questions, real labelled questions."""
    settings = current_app.extensions["settings"]
    table = resources.faq_tables(settings).refresh()
    if not len(table):
        raise click.ClickException("the knowledge base has no FAQ entries to calibrate on")
    embedder = resources.knowledge_store(settings).embedder
    samples = calibration.leave_one_out(table, embedder)
    if questions is not None:
        labelled = []
        for line in questions.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                gold = {row["faq"]} if row.get("faq") else set()
                labelled.append(calibration.Labelled(row["q"], gold, source="file"))
        samples += calibration.label(table, embedder, labelled)
    click.echo(f"{len(table)} FAQ entries, {len(samples)} labelled questions; {embedder.name}")
    current = settings.faq_thresholds
    if current is not None:
        click.echo(
            f"now ({current.as_setting()}): {calibration.outcome(samples, current).describe()}"
        )
    try:
        chosen = calibration.choose(samples, max_wrong=max_wrong)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    near_value = near if near is not None else (current.near if current else chosen.match - 0.05)
    chosen = Thresholds(chosen.match, chosen.gap, chosen.similarity, min(near_value, chosen.match))
    click.echo(f"chosen: {calibration.outcome(samples, chosen).describe()}")
    listed = [s for s in samples if s.source == "listed"]
    if listed:
        right = sum(verdict(s.evidence, chosen) == "verbatim" and s.right for s in listed)
        click.echo(f"  listed paraphrases asked without themselves: {right}/{len(listed)} verbatim")
    click.echo(f"FAQ_MATCH_THRESHOLDS={chosen.as_setting()}")
