"""API settings: the HTTP APIs Dify calls (the tools, the External Knowledge API, the
OpenAI-compatible /v1) and their keys, which are limited separately from the WeChat callbacks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings


class ApiSettings(BaseSettings):
    """APIs for Dify: tools, External Knowledge API, OpenAI-compatible /v1, keys"""

    api_key_cache_s: float = Field(
        5.0,
        ge=0,
        le=300,
        description="Seconds a process trusts an API key it verified without asking the "
        "database again; a revoked key stops working within this time everywhere (0: look up "
        "every request)",
    )
    api_max_body_bytes: int = Field(
        256 * 1024,
        ge=1024,
        description="Larger JSON bodies to the tool API, `/dify/retrieval` and `/v1` get 413",
    )
    tools_max_image_bytes: int = Field(
        10 * 1024 * 1024,
        ge=1024,
        description="Largest image the OCR tools accept (upload or download)",
    )
    tools_fetch_allow_loopback: bool = Field(
        False,
        description="Let the OCR-by-URL tool fetch from loopback addresses (tests, "
        "single-host demos only); private and internal addresses are always refused",
    )
    tools_answer_budget_s: float = Field(
        40.0,
        gt=1,
        le=55,
        description="Wall-clock budget of one answer from the answer tool (Dify gives a tool 60 s)",
    )
    openai_model_name: str = Field(
        "local-llm",
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="Model id served at `/v1`; `<id>-rag` answers from the knowledge base",
    )
    llm_api_mode: Literal["auto", "queue", "inprocess"] = Field(
        "auto",
        description="Where `/v1` and the answer tool generate: `queue` (the Celery llm "
        "workers, tokens streamed back through Redis, so `CELERY_BROKER_URL` must be Redis), "
        "`inprocess` (the web process loads the model once), `auto` (queue when the broker "
        "is Redis)",
    )
