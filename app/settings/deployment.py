"""Deployment settings: what every process of an installation needs before any channel or
model, kept apart so that the rest of the settings read as features."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from app.settings.common import PROJECT_ROOT, HttpUrlText


class DeploymentSettings(BaseSettings):
    """Deployment: secret key, directories, logging, the address and the proxies in front"""

    secret_key: str = Field(
        "dev-only-change-me",
        min_length=8,
        description="Flask's secret key, which signs the staff sign-in session; the built-in "
        "value is for development only: set it in production",
    )
    data_dir: Path = Field(
        PROJECT_ROOT / "var",
        description="Local state: SQLite files, embedded Milvus data, the message spool, "
        "locks, metrics",
    )
    models_dir: Path = Field(
        PROJECT_ROOT / "models",
        description="Where `flask model pull` puts model files, and where the default chat "
        "model is looked for",
    )
    public_base_url: HttpUrlText = Field(
        "http://127.0.0.1:8000", description="The address Dify and WeChat reach this service at"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Logging level of every process"
    )
    business_timezone: str = Field(
        "Asia/Shanghai",
        description="The business's time zone (IANA name): where the staff overview's days "
        "begin and end",
    )
    session_cookie_secure: bool = Field(
        False,
        description="Mark the staff sign-in cookie `Secure` (sent over HTTPS only): turn it "
        "on when browsers reach the service through TLS; off by default so that the quick "
        "start over plain http can sign in",
    )
    trusted_proxies: int = Field(
        0,
        ge=0,
        le=10,
        description="Reverse proxies in front of the web processes whose `X-Forwarded-For` "
        "and `X-Forwarded-Proto` are believed (werkzeug's ProxyFix): the client address the "
        "sign-in throttle keys on, and the scheme. 0 ignores the headers (a client can send "
        "them itself); never set it higher than the number of proxies that append to "
        "`X-Forwarded-For`",
    )

    @field_validator("business_timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r} (an IANA name: Asia/Shanghai)") from exc
        return v
