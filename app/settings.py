"""The one place that reads the environment.

Every setting is an environment variable (optionally from a `.env` file) with the
same name in upper case. Start-up validates all of them at once and reports each bad
value by its variable name, so an operator never has to read a traceback.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: The offline fallback chat model (see `flask model pull`); production uses DeepSeek-R1.
DEFAULT_LLM_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"


class ConfigError(SystemExit):
    """A bad configuration value: exits with a message that names the variable."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # --- service -----------------------------------------------------------------
    secret_key: str = Field("dev-only-change-me", min_length=8)
    data_dir: Path = PROJECT_ROOT / "var"
    models_dir: Path = PROJECT_ROOT / "models"
    public_base_url: str = "http://127.0.0.1:8000"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # --- WeChat Official Account ---------------------------------------------------
    wechat_token: str = ""
    wechat_app_id: str = ""
    wechat_app_secret: str = ""
    wechat_aes_key: str = ""
    wechat_api_base_url: str = "https://api.weixin.qq.com"
    wechat_max_body_bytes: int = Field(64 * 1024, ge=1024)
    wechat_timestamp_window_s: int = Field(300, ge=0)
    wechat_send_retries: int = Field(3, ge=0, le=10)
    wechat_http_timeout_s: float = Field(5.0, gt=0)
    wechat_welcome: str = (
        "您好，欢迎关注！我是智能客服，可以帮您查询发货、退换货、发票等问题。"
        "试试直接问我：“满多少包邮？”“退款多久到账？”"
    )
    #: JSON object: menu EventKey -> reply text, e.g. {"CONTACT": "客服时间9:00-21:00"}
    wechat_menu_replies: dict[str, str] = Field(default_factory=dict)
    #: Comma-separated words with which a customer asks for a person.
    handoff_keywords: str = "人工,转人工,人工客服,真人,客服电话,找客服"

    # --- stores --------------------------------------------------------------------
    database_url: str = ""
    celery_broker_url: str = ""
    milvus_uri: str = "http://127.0.0.1:19530"
    milvus_token: str = ""
    milvus_collection: str = "knowledge"

    # --- models --------------------------------------------------------------------
    llm_model_path: Path | None = None
    llm_n_gpu_layers: int = Field(0, ge=-1)
    llm_n_ctx: int = Field(4096, ge=512)
    llm_n_threads: int | None = Field(None, ge=1)
    llm_max_tokens: int = Field(384, ge=16)
    llm_temperature: float = Field(0.6, ge=0.0, le=2.0)
    llm_top_p: float = Field(0.95, gt=0.0, le=1.0)
    llm_seed: int = -1
    embedding_model: str = "all-MiniLM-L6-v2"

    # --- knowledge -----------------------------------------------------------------
    knowledge_dir: Path = PROJECT_ROOT / "knowledge"
    retrieval_top_k: int = Field(4, ge=1, le=50)
    #: How close (0-1, character similarity) a question must be to an FAQ question or one of
    #: its listed paraphrases for the stored answer to be sent verbatim, without the model.
    faq_direct_threshold: float = Field(0.9, ge=0.5, le=1.01)

    # --- answering -----------------------------------------------------------------
    stale_message_after_s: int = Field(120, ge=10)

    @field_validator("wechat_token")
    @classmethod
    def _token_shape(cls, v: str) -> str:
        if v and not re.fullmatch(r"[A-Za-z0-9]{3,32}", v):
            raise ValueError("must be 3-32 letters or digits, as WeChat's admin console requires")
        return v

    @field_validator("wechat_aes_key")
    @classmethod
    def _aes_shape(cls, v: str) -> str:
        if v and not re.fullmatch(r"[A-Za-z0-9]{43}", v):
            raise ValueError("the EncodingAESKey must be exactly 43 letters or digits")
        return v

    @field_validator("wechat_api_base_url", "public_base_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"must be an http(s) URL, got {v!r}")
        return v.rstrip("/")

    @field_validator("milvus_uri")
    @classmethod
    def _milvus_uri(cls, v: str) -> str:
        # Always a server URI: milvus-lite admits one process per data directory, so even the
        # embedded default runs as a server all processes share. (pymilvus also reads
        # MILVUS_URI from the environment at import and rejects file paths there.)
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https", "tcp", "grpc") or not parts.netloc:
            raise ValueError("must be http(s)://host:port of a Milvus or milvus-lite server")
        return v

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: str) -> str:
        if v and not re.match(r"^(sqlite|postgresql(\+\w+)?)://", v):
            raise ValueError("must start with sqlite:// or postgresql://")
        return v

    @field_validator("celery_broker_url")
    @classmethod
    def _broker_url(cls, v: str) -> str:
        if v and not re.match(r"^(redis|rediss|amqp|sqla\+sqlite|sqla\+postgresql|memory)://", v):
            raise ValueError("must be a redis://, amqp:// or sqla+sqlite:// URL")
        return v

    @model_validator(mode="after")
    def _derived_defaults(self) -> Settings:
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
    def wechat_configured(self) -> bool:
        return bool(self.wechat_token and self.wechat_app_id and self.wechat_app_secret)

    @property
    def handoff_words(self) -> list[str]:
        return [w.strip() for w in self.handoff_keywords.split(",") if w.strip()]

    @property
    def embedded_broker(self) -> bool:
        return self.celery_broker_url.startswith("sqla+")


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
