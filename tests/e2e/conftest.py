"""The running service on its production path: gunicorn, a Celery worker on Redis,
PostgreSQL, a milvus-lite server, the real model; WeChat played by the simulator."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.simulator.api import create_simulator_app
from app.simulator.server import serve_in_thread
from app.simulator.state import WeChatAPISimulator
from tests.support import (
    TEST_MODEL,
    WECHAT,
    Processes,
    base_env,
    broker_url,
    start_service,
)


@dataclass
class Service:
    url: str
    env: dict[str, str]
    sim: WeChatAPISimulator
    db: sa.Engine
    processes: Processes

    def scalar(self, sql: str, **params: object) -> object:
        with self.db.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()


@pytest.fixture(scope="session")
def wechat_sim() -> Iterator[tuple[WeChatAPISimulator, str]]:
    sim = WeChatAPISimulator(WECHAT["app_id"], WECHAT["secret"])
    handle = serve_in_thread(create_simulator_app(sim))
    yield sim, handle.url
    handle.stop()


@pytest.fixture(scope="session")
def service(
    tmp_path_factory: pytest.TempPathFactory,
    processes: Processes,
    pg_url: str,
    milvus_uri: str,
    wechat_sim: tuple[WeChatAPISimulator, str],
) -> Iterator[Service]:
    assert TEST_MODEL.is_file(), "run `flask model pull qwen2.5-0.5b` (make test does)"
    sim, sim_url = wechat_sim
    data_dir: Path = tmp_path_factory.mktemp("data")
    env = base_env(
        data_dir,
        DATABASE_URL=pg_url,
        CELERY_BROKER_URL=broker_url("e2e"),
        MILVUS_URI=milvus_uri,
        MILVUS_COLLECTION="kb_e2e",
        WECHAT_TOKEN=WECHAT["token"],
        WECHAT_APP_ID=WECHAT["app_id"],
        WECHAT_APP_SECRET=WECHAT["secret"],
        WECHAT_API_BASE_URL=sim_url,
        STALE_MESSAGE_AFTER_S="30",
    )
    url = start_service(processes, env, "e2e")
    engine = sa.create_engine(pg_url)
    yield Service(url, env, sim, engine, processes)
    engine.dispose()
    processes.stop("e2e-web")
    processes.stop("e2e-worker")
