"""The one place that creates heavy objects (model, embedder, Milvus client), once per process.

They are created lazily so the web process never loads the chat model and a Celery
prefork child creates its own after the fork.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from app.settings import Settings

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from app.knowledge.store import KnowledgeStore
    from app.llm.engine import LlamaEngine
    from app.pipeline.answer import AnswerPipeline

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


def knowledge_store(settings: Settings) -> KnowledgeStore:
    def make() -> KnowledgeStore:
        from app.knowledge.embedding import load_embedder
        from app.knowledge.store import KnowledgeStore

        store = KnowledgeStore(
            settings.milvus_uri,
            settings.milvus_collection,
            load_embedder(settings.embedding_model, cache_dir=settings.models_dir),
            token=settings.milvus_token,
        )
        return store

    return _once(f"kb:{settings.milvus_uri}:{settings.milvus_collection}", make)  # type: ignore[return-value]


def milvus_client(settings: Settings) -> MilvusClient:
    """A bare client for cheap checks (health) where the embedder is not needed."""

    def make() -> MilvusClient:
        from pymilvus import MilvusClient

        return MilvusClient(uri=settings.milvus_uri, token=settings.milvus_token, timeout=2)

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
        )

    return _once(f"llm:{settings.llm_model_path}", make)  # type: ignore[return-value]


def answer_pipeline(settings: Settings) -> AnswerPipeline:
    from app.llm.engine import GenerationParams
    from app.pipeline.answer import AnswerPipeline

    params = GenerationParams(
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
        top_p=settings.llm_top_p,
        seed=settings.llm_seed,
    )
    return AnswerPipeline(
        knowledge_store(settings),
        llm(settings),
        params,
        top_k=settings.retrieval_top_k,
        faq_threshold=settings.faq_direct_threshold,
    )
