"""The one place that creates heavy objects (model, embedder, Milvus client, OCR), once per process.

They are created lazily so the web process never loads the chat model and a Celery
prefork child creates its own after the fork.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from app.settings import Settings

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from app.faq.matching import FaqMatcher
    from app.faq.table import TableHolder
    from app.knowledge.aliases import AliasBook
    from app.knowledge.store import KnowledgeStore
    from app.llm.engine import GenerationParams, LlamaEngine
    from app.messages.answering import Answerer
    from app.ocr import OcrEngine
    from app.pipeline.answer import AnswerPipeline
    from app.safety.ratelimit import FailureLog, WindowCounter
    from app.speech import SpeechEngine

_lock = threading.Lock()

_objects: dict[str, object] = {}


def _once(key: str, factory):  # noqa: ANN001, ANN202 - tiny internal memo
    obj = _objects.get(key)
    if obj is None:
        with _lock:
            obj = _objects.get(key)
            if obj is None:
                obj = factory()
                _objects[key] = obj
    return obj


def stop_background() -> None:
    """End the background threads of this process's objects (FAQ table refresh); they
    start again on next use. For tests, which build many apps in one process."""
    from app.faq.table import TableHolder

    for obj in list(_objects.values()):
        if isinstance(obj, TableHolder):
            obj.stop()


def knowledge_store(settings: Settings) -> KnowledgeStore:
    def make() -> KnowledgeStore:
        from app.knowledge.embedding import RecentQueries, load_embedder
        from app.knowledge.enabling import DisabledDocuments
        from app.knowledge.store import KnowledgeStore

        embedder = load_embedder(settings.embedding_model, cache_dir=settings.models_dir)
        store = KnowledgeStore(
            settings.milvus_uri,
            settings.milvus_collection,
            RecentQueries(embedder, settings.embedding_query_cache),
            token=settings.milvus_token,
            connect_timeout=settings.milvus_timeout_s,
            request_timeout=settings.milvus_timeout_s,
            # Readers and writers go through the alias; a reindex swaps what it names.
            aliased=True,
            # Documents switched off are found by no search (app/knowledge/enabling.py).
            hidden_documents=DisabledDocuments(
                settings.database_url, connect_timeout_s=settings.db_connect_timeout_s
            ),
        )
        return store

    return _once(f"kb:{settings.milvus_uri}:{settings.milvus_collection}", make)  # type: ignore[return-value]


def faq_tables(settings: Settings) -> TableHolder:
    """This process's FAQ table of the knowledge collection, refreshed in the background."""
    store = knowledge_store(settings)  # not inside _once: its lock is not reentrant

    def make() -> TableHolder:
        from app.faq.publishing import change_stamp
        from app.faq.table import MAX_ROWS, TableHolder

        return TableHolder(
            lambda: store.faq_rows(limit=MAX_ROWS), change_stamp(settings.database_url)
        )

    return _once(f"faq:{settings.milvus_uri}:{settings.milvus_collection}", make)  # type: ignore[return-value]


def faq_matcher(settings: Settings, *, wait: bool = True) -> FaqMatcher:
    """FAQ matching over this process's table; ``wait=False`` (web requests) never waits
    for the first read of the table."""
    from app.faq.matching import FaqMatcher

    tables = faq_tables(settings)
    store = knowledge_store(settings)
    return FaqMatcher(
        lambda: tables.get(wait=wait),
        store.embedder.embed_queries,
        settings.faq_thresholds,
        char_threshold=settings.faq_direct_threshold,
    )


def milvus_client(settings: Settings) -> MilvusClient:
    """A bare client for cheap checks (health) where the embedder is not needed."""

    def make() -> MilvusClient:
        from pymilvus import MilvusClient

        # A connection of its own, apart from the knowledge store's (made later, at the first
        # search): pymilvus shares one per URI unless given a connection alias.
        return MilvusClient(
            uri=settings.milvus_uri, token=settings.milvus_token, timeout=2, alias="health"
        )

    return _once(f"milvus:{settings.milvus_uri}", make)  # type: ignore[return-value]


def llm(settings: Settings) -> LlamaEngine:
    def make() -> LlamaEngine:
        from app.llm.engine import LlamaEngine

        assert settings.llm_model_path is not None
        return LlamaEngine(
            settings.llm_model_path,
            n_ctx=settings.llm_n_ctx,
            n_gpu_layers=settings.llm_n_gpu_layers,
            n_threads=settings.llm_n_threads,
            seed=settings.llm_seed,
            n_parallel=settings.llm_parallel,
            flash_attn=settings.llm_flash_attn,
        )

    return _once(f"llm:{settings.llm_model_path}", make)  # type: ignore[return-value]


class _ModelOnFirstUse:
    """The chat model, loaded when the first answer needs it: a web process that only
    looks up FAQ answers never loads it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def __getattr__(self, name: str) -> object:
        return getattr(llm(self._settings), name)


def generation_params(settings: Settings) -> GenerationParams:
    from app.llm.engine import GenerationParams

    return GenerationParams(
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
        top_p=settings.llm_top_p,
        seed=settings.llm_seed,
        time_budget_s=settings.llm_time_budget_s,
    )


def answer_pipeline(settings: Settings, *, with_memory: bool = True) -> AnswerPipeline:
    """The answer pipeline of this process. Conversation memory lives in the database, so
    it needs the app context (Celery tasks and requests have one)."""
    from app.faq.judge import FaqJudge
    from app.pipeline.answer import REFUSAL_TEXT, AnswerPipeline
    from app.pipeline.sensitive import load_filter

    memory = None
    if with_memory and settings.memory_turns > 0:
        from app.extensions import db
        from app.pipeline.memory import SqlMemory

        memory = SqlMemory(db.engine, turns=settings.memory_turns, ttl_s=settings.memory_ttl_s)
    model = _ModelOnFirstUse(settings)
    judge = (
        FaqJudge(model, settings.faq_judge_threshold)  # type: ignore[arg-type]
        if settings.faq_judge_threshold > 0
        else None
    )
    return AnswerPipeline(
        knowledge_store(settings),
        model,  # type: ignore[arg-type]
        generation_params(settings),
        top_k=settings.retrieval_top_k,
        memory=memory,
        sensitive=load_filter(settings.sensitive_words_file),
        min_support=settings.answer_min_support,
        faq_min_similarity=settings.faq_min_similarity,
        refusal_text=settings.answer_refusal_text or REFUSAL_TEXT,
        n_ctx=settings.llm_n_ctx,
        faq=faq_matcher(settings),
        judge=judge,
        max_question_chars=settings.answer_max_question_chars,
    )


def customer_answerer(settings: Settings) -> Answerer:
    """What answers WeChat and WeCom questions (ANSWER_BACKEND): the answer pipeline, or
    a Dify app through its chat-messages API."""
    if settings.answer_backend == "pipeline":
        return answer_pipeline(settings)

    def make() -> Answerer:
        from app.dify.app_backend import DifyAppAnswerer, DifyAppClient, DifyConversations
        from app.extensions import db
        from app.pipeline.answer import REFUSAL_TEXT
        from app.pipeline.sensitive import load_filter

        return DifyAppAnswerer(
            DifyAppClient(
                settings.dify_app_api_url,
                settings.dify_app_api_key,
                timeout_s=settings.dify_app_timeout_s,
            ),
            DifyConversations(db.engine, ttl_s=settings.memory_ttl_s),
            inputs=settings.dify_app_inputs,
            sensitive=load_filter(settings.sensitive_words_file),
            fallback_text=settings.answer_refusal_text or REFUSAL_TEXT,
        )

    return _once("dify-app", make)


def ocr_engine(settings: Settings) -> OcrEngine:
    """One RapidOCR engine per process (its ONNX models load in about a second)."""

    def make() -> OcrEngine:
        from app.ocr import OcrEngine

        return OcrEngine(max_pixels=settings.ocr_max_pixels)

    return _once("ocr", make)  # type: ignore[return-value]


def speech_engine(settings: Settings) -> SpeechEngine:
    """One speech engine per process; its model loads at the first voice message (about a
    second for whisper-base), so a worker that never hears one never loads it."""

    def make() -> SpeechEngine:
        from app.speech import SpeechEngine

        return SpeechEngine.from_settings(settings)

    return _once("speech", make)  # type: ignore[return-value]


def rate_counter(settings: Settings) -> WindowCounter:
    """Per-customer message counts: Redis when the broker is Redis, else the database."""
    from app.safety.ratelimit import counter_for

    return _once(
        f"rate:{settings.celery_broker_url}", lambda: counter_for(settings.celery_broker_url)
    )  # type: ignore[return-value]


def failure_log(settings: Settings) -> FailureLog:
    """Failed sign-ins with their times (the sign-in throttle): Redis or the database."""
    from app.safety.ratelimit import failure_log_for

    return _once(
        f"failures:{settings.celery_broker_url}",
        lambda: failure_log_for(settings.celery_broker_url),
    )  # type: ignore[return-value]


def milvus_aliases(settings: Settings) -> AliasBook:
    """What the knowledge alias names, read the way the knowledge store reads it."""

    def make() -> AliasBook:
        from app.knowledge.aliases import alias_book

        return alias_book(milvus_client(settings))

    return _once(f"milvus-aliases:{settings.milvus_uri}", make)  # type: ignore[return-value]


def serving_collection(settings: Settings) -> str:
    """The physical collection behind MILVUS_COLLECTION now (itself where it is no alias)."""
    return milvus_aliases(settings).target(settings.milvus_collection) or settings.milvus_collection
