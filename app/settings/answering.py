"""Answering settings: how a question's answer survives lost tasks and dead workers, what an
answer must pass before it is sent, and the Dify app that may answer in the pipeline's place."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings

from app.settings.common import shown

#: ANSWER_MIN_FAQ_SIMILARITY for E5 embedders: 9 % of real paraphrases in a held-out FAQ
#: set (chatopera) fall below it against their FAQ's question (bench/RESULTS.md).
E5_FAQ_MIN_SIMILARITY = 0.86


class AnsweringSettings(BaseSettings):
    """Answering: recovery, retries, answer checks, the Dify app backend"""

    # --- exactly one answer, however workers fail --------------------------------------
    stale_message_after_s: int = Field(
        120,
        ge=10,
        description="A message unanswered this long whose task is lost (its publish failed, "
        "or its worker died holding it) is queued again; one still waiting in the queue is "
        "left alone (Redis and the embedded broker are asked)",
    )
    answer_claim_lease_s: int = Field(
        45,
        ge=6,
        description="A worker renews its claim on the message it answers every third of "
        "this; a claim older than this is a dead worker's: the sweeper queues the message "
        "again and the next task takes it over",
    )
    answer_sweep_every_s: float = Field(
        15.0,
        ge=1.0,
        description="How often beat runs the sweeper (re-queues lost messages, fails spent "
        "ones): with the lease, a dead worker's answers are queued again within a minute",
    )
    answer_wait_notice_after_s: int = Field(
        60,
        ge=0,
        description="A question still waiting in the queue this long (a backlog) gets one "
        "message saying its answer is coming (`ANSWER_WAIT_NOTICE_TEXT`, async delivery); 0: "
        "never. Passive delivery has its own pending reply (`WECHAT_PASSIVE_PENDING_TEXT`)",
    )
    answer_wait_notice_text: str = Field(
        "您的问题已收到，现在咨询的人比较多，正在排队处理，请稍等片刻，马上为您解答。",
        description="The message of `ANSWER_WAIT_NOTICE_AFTER_S`",
        json_schema_extra=shown('a short "your question is queued, the answer is coming"'),
    )
    answer_max_attempts: int = Field(
        5,
        ge=1,
        le=50,
        description="Runs of the answer task (Celery retries and sweeps together) before a "
        "message is marked `failed` with the reason; a customer whose question got no answer "
        "at all is then told so once and offered a person",
    )
    answer_retry_backoff_s: float = Field(
        5.0,
        gt=0,
        description="First Celery retry delay after a failure; doubles each time, at most 300 s",
    )

    # --- what an answer remembers and must pass ------------------------------------------
    memory_turns: int = Field(
        3,
        ge=0,
        le=20,
        description="Earlier questions and answers of a customer given to the model for "
        "follow-up questions (`0`: no memory)",
    )
    memory_ttl_s: int = Field(
        1800, ge=60, description="Conversation turns older than this are forgotten"
    )
    sensitive_words_file: Path | None = Field(
        None,
        description="UTF-8 file, one word per line (`#` comments): words masked with `*` in "
        "every answer",
        json_schema_extra=shown("(empty: no filter)"),
    )
    answer_min_support: float = Field(
        0.7,
        ge=0.0,
        le=1.0,
        description="Share of an answer sentence's words that must occur in the retrieved "
        "passages; a first sentence below it turns the answer into the hand-off reply",
    )
    answer_min_faq_similarity: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="An FAQ entry backs an answer only if one of its questions (or listed "
        "paraphrases) is at least this similar to the customer's question (cosine); 0 turns "
        "the check off. Calibrated for E5 (`bench/RESULTS.md`); with another embedder, "
        "measure before setting it: similarity scales differ",
        json_schema_extra=shown(f"`{E5_FAQ_MIN_SIMILARITY:g}` with an E5 embedder, else off"),
    )
    answer_refusal_text: str = Field(
        "",
        description="Reply when the knowledge does not cover a question (it should offer a person)",
        json_schema_extra=shown("(empty: the built-in one)"),
    )
    answer_max_question_chars: int = Field(
        1000,
        ge=50,
        le=100_000,
        description="Longer questions (a pasted page) get a polite request to ask in a "
        "sentence or two, instead of failing on the model's context window",
    )

    # --- who answers -----------------------------------------------------------------------
    answer_backend: Literal["pipeline", "dify"] = Field(
        "pipeline",
        description="Who answers WeChat and WeCom questions: `pipeline` (the built-in answer "
        "pipeline) or `dify` (a Dify chat or chatflow app, for teams who build the "
        'conversation there; see "Dify integration")',
    )
    dify_app_api_url: str = Field(
        "",
        description="`ANSWER_BACKEND=dify`: the app's API base as Dify shows it under API "
        "Access, e.g. `http://dify.internal/v1`",
    )
    dify_app_api_key: str = Field(
        "", description="`ANSWER_BACKEND=dify`: the app's API key (`app-…`)"
    )
    dify_app_inputs: dict[str, str] = Field(
        default_factory=dict,
        description="JSON object: values of the app's input variables, sent with every question",
    )
    dify_app_timeout_s: float = Field(
        60.0,
        ge=2,
        le=600,
        description="How long to wait for the app's answer before the question is tried "
        "again later",
    )

    @field_validator("sensitive_words_file", mode="before")
    @classmethod
    def _readable_file(cls, v: object) -> Path | None:
        if v is None or str(v).strip() == "":
            return None
        v = Path(str(v)).expanduser()
        if not v.is_file():
            raise ValueError(f"no such file: {v}")
        try:
            v.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read {v} as UTF-8 text: {exc}") from None
        return v

    @model_validator(mode="after")
    def _dify_backend_complete(self) -> Self:
        if self.answer_backend != "dify":
            return self
        parts = urlsplit(self.dify_app_api_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                "ANSWER_BACKEND=dify needs DIFY_APP_API_URL, the app's API base as Dify shows "
                "it under API Access (e.g. http://dify.internal/v1)"
            )
        if not self.dify_app_api_key:
            raise ValueError("ANSWER_BACKEND=dify needs DIFY_APP_API_KEY (the app's app-... key)")
        return self
