"""What the answer-engine benchmarks share: the sample knowledge in a milvus-lite server,
the real model, the service's pipeline, and a description of the machine."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.knowledge import milvus_server
from bench.ack_latency import ROOT, Processes, free_port, machine

MODELS = {
    "0.5b": ROOT / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "1.5b": ROOT / "models" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
}


def model_path(name: str) -> Path:
    """A short name from MODELS or a path to a GGUF file."""
    path = MODELS.get(name, Path(name))
    if not path.is_file():
        raise SystemExit(f"model not found: {path} (run `flask model pull qwen2.5-{name}`)")
    return path


@contextmanager
def knowledge_store(
    milvus_uri: str | None = None,
    collection: str = "kb_bench",
    knowledge: Path = ROOT / "knowledge",
) -> Iterator:
    """A knowledge folder (the sample shop's by default) indexed with the configured
    embedder, in the given Milvus or in a milvus-lite server started (and stopped) here."""
    from app.knowledge.embedding import load_embedder
    from app.knowledge.ingest import ingest_directory
    from app.knowledge.store import KnowledgeStore
    from app.settings import load_settings

    settings = load_settings()
    with tempfile.TemporaryDirectory(prefix="bench-answers-") as tmp:
        processes = Processes(Path(tmp))
        try:
            if milvus_uri is None:
                port = free_port()
                processes.start(
                    "milvus",
                    milvus_server.command(Path(tmp) / "milvus", "127.0.0.1", port),
                    dict(os.environ),
                )
                processes.wait_port("milvus", port)
                milvus_uri = f"http://127.0.0.1:{port}"
            embedder = load_embedder(settings.embedding_model, cache_dir=settings.models_dir)
            store = KnowledgeStore(milvus_uri, collection, embedder)
            ingest_directory(store, knowledge)
            yield store
            store.close()
        finally:
            processes.stop_all()


def describe_machine(model: Path | None = None) -> str:
    info = machine()
    lines = [f"- {k}: {v}" for k, v in info.items()]
    load = os.getloadavg()
    lines.append(f"- load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if model is not None:
        lines.append(f"- model: {model.name} ({model.stat().st_size / 1e9:.2f} GB)")
    return "\n".join(lines)


def service_pipeline(store: object, engine: object, params: object, **overrides: object):  # noqa: ANN201
    """The pipeline as the service configures it (settings from the environment), with
    ``overrides`` for what a benchmark varies."""
    from app.faq.judge import FaqJudge
    from app.faq.matching import FaqMatcher
    from app.faq.table import FaqTable
    from app.pipeline.answer import AnswerPipeline
    from app.settings import load_settings

    settings = load_settings()
    # Read once: the knowledge does not change during a run, and no refresh thread is left
    # behind retrying a Milvus server the run has stopped.
    table = FaqTable.from_rows(store.faq_rows())  # type: ignore[attr-defined]
    options: dict = {
        "top_k": settings.retrieval_top_k,
        "n_ctx": settings.llm_n_ctx,
        "min_support": settings.answer_min_support,
        "faq_min_similarity": settings.faq_min_similarity,
        "faq": FaqMatcher(
            lambda: table,
            store.embedder.embed_queries,  # type: ignore[attr-defined]
            settings.faq_thresholds,
            char_threshold=settings.faq_direct_threshold,
        ),
        "judge": FaqJudge(engine, settings.faq_judge_threshold)  # type: ignore[arg-type]
        if settings.faq_judge_threshold > 0
        else None,
        **overrides,
    }
    return AnswerPipeline(store, engine, params, **options)  # type: ignore[arg-type]
