"""The one place that reads the environment.

Every setting is an environment variable (optionally from a `.env` file) with the
same name in upper case. Start-up validates all of them at once and reports each bad
value by its variable name, so an operator never has to read a traceback.

The fields live in one mixin per area (the pattern of Dify's `api/configs/`), each with its
description, so that the README's table can be generated from them (`flask settings readme`,
app/settings/readme.py); `Settings` composes the mixins and holds what spans areas.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Self

from pydantic import ValidationError, model_validator
from pydantic_settings import SettingsConfigDict

from app.settings.answering import E5_FAQ_MIN_SIMILARITY, AnsweringSettings
from app.settings.api import ApiSettings
from app.settings.common import PROJECT_ROOT
from app.settings.deployment import DeploymentSettings
from app.settings.kf import KfSettings
from app.settings.knowledge import KnowledgeSettings, cron_schedule
from app.settings.model import DEFAULT_LLM_FILE, ModelSettings
from app.settings.safety import SafetySettings
from app.settings.speech import SpeechSettings
from app.settings.store import StoreSettings
from app.settings.wechat import WeChatSettings
from app.settings.wecom import WeComSettings

__all__ = [
    "DEFAULT_LLM_FILE",
    "E5_FAQ_MIN_SIMILARITY",
    "PROJECT_ROOT",
    "ConfigError",
    "Settings",
    "cron_schedule",
    "format_validation_error",
    "get_settings",
    "load_settings",
]


class ConfigError(SystemExit):
    """A bad configuration value: exits with a message that names the variable."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# pydantic orders the fields of the last base first: the mixins are listed backwards so that
# the fields, the start-up error messages and the README's table read from DEPLOYMENT on.
class Settings(
    ApiSettings,
    AnsweringSettings,
    KnowledgeSettings,
    SpeechSettings,
    ModelSettings,
    StoreSettings,
    SafetySettings,
    KfSettings,
    WeComSettings,
    WeChatSettings,
    DeploymentSettings,
):
    """Every setting: the areas' mixins, and what spans areas (derived defaults, checks)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    @model_validator(mode="after")
    def _queue_needs_redis(self) -> Self:
        if self.llm_api_mode == "queue" and not self.celery_broker_url.startswith(
            ("redis://", "rediss://")
        ):
            raise ValueError(
                "LLM_API_MODE=queue streams tokens back through Redis: set CELERY_BROKER_URL "
                "to a redis:// URL, or use LLM_API_MODE=inprocess"
            )
        return self

    @model_validator(mode="after")
    def _derived_defaults(self) -> Self:
        self.data_dir = self.data_dir.resolve()
        self.models_dir = self.models_dir.resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'app.db'}"
        if not self.celery_broker_url:
            self.celery_broker_url = f"sqla+sqlite:///{self.data_dir / 'broker.sqlite'}"
        if self.llm_model_path is None:
            self.llm_model_path = self.models_dir / DEFAULT_LLM_FILE
        self.knowledge_dir = self.knowledge_dir.resolve()
        return self

    @property
    def faq_min_similarity(self) -> float:
        """ANSWER_MIN_FAQ_SIMILARITY, or its default for the configured embedder."""
        if self.answer_min_faq_similarity is not None:
            return self.answer_min_faq_similarity
        from app.knowledge.embedding import is_e5

        return E5_FAQ_MIN_SIMILARITY if is_e5(self.embedding_model) else 0.0

    @property
    def faq_thresholds(self):  # noqa: ANN201 - app.faq.matching.Thresholds | None
        """FAQ_MATCH_THRESHOLDS, or the calibrated ones of the configured embedder."""
        from app.faq.matching import E5_THRESHOLDS, Thresholds
        from app.knowledge.embedding import is_e5

        if self.faq_match_thresholds:
            return Thresholds.parse(self.faq_match_thresholds)
        return E5_THRESHOLDS if is_e5(self.embedding_model) else None

    @property
    def instant_faq(self) -> bool:
        """FAQ hits answered in the web process; not when a Dify app owns the conversation."""
        return self.wechat_instant_faq and self.answer_backend == "pipeline"

    @property
    def llm_via_queue(self) -> bool:
        """True when API generation goes to the Celery llm worker (needs a Redis broker)."""
        if self.llm_api_mode == "auto":
            return self.celery_broker_url.startswith(("redis://", "rediss://"))
        return self.llm_api_mode == "queue"


def format_validation_error(exc: ValidationError) -> str:
    lines = ["Configuration error (fix these environment variables or .env entries):"]
    for err in exc.errors():
        name = str(err["loc"][0]).upper() if err["loc"] else "?"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {name}: {msg} (got {os.environ.get(name, err.get('input'))!r})")
    return "\n".join(lines)


def load_settings(**overrides: object) -> Settings:
    """Reads and validates the configuration, or raises ConfigError naming each bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
