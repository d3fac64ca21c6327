"""Knowledge settings: where documents come from, how much of them an answer sees, when an FAQ
entry answers on its own, and the limits and schedule of the knowledge base's upkeep."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from app.settings.common import PROJECT_ROOT, shown


class KnowledgeSettings(BaseSettings):
    """Knowledge base: documents, retrieval, FAQ answers, uploads, reindex"""

    knowledge_dir: Path = Field(
        PROJECT_ROOT / "knowledge", description="Source documents indexed by `flask kb ingest`"
    )
    retrieval_top_k: int = Field(4, ge=1, le=50, description="Passages given to the model")
    faq_direct_threshold: float = Field(
        0.9,
        ge=0.5,
        le=1.01,
        description="How close (0-1, character similarity) a question must be to an FAQ "
        "question or one of its listed paraphrases for that entry's stored answer to be sent "
        "verbatim, without embedding the question or asking the model (typos, punctuation)",
    )
    faq_match_thresholds: str = Field(
        "",
        description="`match,gap,similarity,near` cosines deciding FAQ answers by meaning "
        '(app/faq/matching.py; see "FAQ answers by meaning"); `flask faq calibrate` derives '
        "them for the configured embedder",
        json_schema_extra=shown(
            "the calibrated E5 values; with another embedder, none until calibrated"
        ),
    )
    faq_judge_threshold: float = Field(
        0.55,
        ge=0.0,
        le=1.0,
        description="Before the model answers a question near an FAQ entry (or a document "
        "passage), it judges whether that passage answers it; from this probability it "
        "answers from that passage alone (0: never judge)",
    )
    faq_instant_max_rate: float = Field(
        20.0,
        ge=0.0,
        description="Questions per second each web process embeds to answer FAQ questions by "
        "meaning at once; beyond it they go to the workers, which match them too. Bounds the "
        "web processes' CPU under a burst (0: characters only in the web tier)",
    )

    # --- uploads, document lifecycle, reindex ----------------------------------------------
    kb_max_upload_bytes: int = Field(
        50 * 1024 * 1024, ge=1024, description="Larger knowledge uploads are refused (413)"
    )
    kb_max_unzipped_bytes: int = Field(
        200 * 1024 * 1024,
        ge=1024 * 1024,
        description="A .docx/.xlsx that would unpack to more than this is refused as a zip "
        "bomb, before it is opened",
    )
    kb_max_zip_ratio: int = Field(
        100,
        ge=10,
        description="A .docx/.xlsx over 1 MB unpacked that inflates more than this many "
        "times is refused as a zip bomb, before it is opened",
    )
    kb_reindex_cron: str = Field(
        "0 3 * * *",
        description="When Celery beat runs the nightly blue/green reindex (5-field cron: "
        "minute hour day month weekday, UTC); empty disables it",
    )
    kb_stalled_after_s: int = Field(
        600,
        ge=30,
        description="A document queued or being indexed with no progress for this long, "
        "while the workers index nothing else, is queued again (its task was lost)",
    )

    @field_validator("faq_match_thresholds")
    @classmethod
    def _faq_thresholds(cls, v: str) -> str:
        from app.faq.matching import Thresholds

        v = v.strip()
        if v:
            Thresholds.parse(v)
        return v

    @field_validator("kb_reindex_cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        v = " ".join(v.split())
        if not v:
            return v
        if len(v.split(" ")) != 5:
            raise ValueError("must have 5 fields: minute hour day-of-month month day-of-week")
        try:
            cron_schedule(v)
        except Exception as exc:  # noqa: BLE001 - celery raises ValueError or its own
            raise ValueError(f"not a valid cron expression: {exc}") from None
        return v


def cron_schedule(expr: str):  # noqa: ANN201 - celery.schedules.crontab
    """Celery's crontab for a standard 5-field cron expression (Celery's own positional
    order differs: it puts day-of-week third)."""
    from celery.schedules import crontab

    minute, hour, day_of_month, month, day_of_week = expr.split()
    return crontab(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month,
        day_of_week=day_of_week,
    )
