"""The service on its production path answering through a Dify app (ANSWER_BACKEND=dify):
gunicorn and a Celery worker on Redis, a fresh PostgreSQL database, WeChat played by the
simulator and the app by tests/dify/fake_app_api.py. A Dify app's answer costs this
machine no CPU, so stacks that test delivery under load (backlog, kills) use it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.simulator.api import create_simulator_app
from app.simulator.server import serve_in_thread
from app.simulator.state import WeChatAPISimulator
from tests.conftest import temp_pg_database
from tests.dify.fake_app_api import FakeDifyApp, create_fake_dify_app
from tests.support import WECHAT, Processes, base_env, broker_url, start_service


@dataclass
class DifyStack:
    url: str
    env: dict[str, str]
    database_url: str
    sim: WeChatAPISimulator
    dify: FakeDifyApp


@contextmanager
def dify_backed_stack(
    name: str,
    data_dir: Path,
    processes: Processes,
    milvus_uri: str,
    *,
    app_id: str,
    dify: FakeDifyApp,
    concurrency: int = 1,
    pool: str = "prefork",
    database_url: str | None = None,
    broker: str | None = None,
    **extra: str,
) -> Iterator[DifyStack]:
    """Starts the stack ``name`` (its Redis database: tests/support.BROKER_DBS, a fresh
    PostgreSQL database; ``broker`` and ``database_url`` name others) with the settings in
    ``extra``; stops its web and worker processes afterwards (others the caller started
    under ``name-…`` it stops itself)."""
    secret = f"{name}-secret"
    sim = WeChatAPISimulator(app_id, secret)
    sim_handle = serve_in_thread(create_simulator_app(sim))
    dify_handle = serve_in_thread(create_fake_dify_app(dify))
    try:
        with _database(database_url) as url:
            env = base_env(
                data_dir,
                DATABASE_URL=url,
                CELERY_BROKER_URL=broker or broker_url(name),
                MILVUS_URI=milvus_uri,
                MILVUS_COLLECTION=f"kb_{name}_e2e",
                WECHAT_TOKEN=WECHAT["token"],
                WECHAT_APP_ID=app_id,
                WECHAT_APP_SECRET=secret,
                WECHAT_API_BASE_URL=sim_handle.url,
                ANSWER_BACKEND="dify",
                DIFY_APP_API_URL=dify_handle.url + "/v1",
                DIFY_APP_API_KEY=dify.api_key,
                **extra,
            )
            service = start_service(
                processes, env, name, web_workers=1, concurrency=concurrency, pool=pool
            )
            try:
                yield DifyStack(service, env, url, sim, dify)
            finally:
                processes.stop(f"{name}-web")
                processes.stop(f"{name}-worker")
    finally:
        sim_handle.stop()
        dify_handle.stop()


@contextmanager
def _database(given: str | None) -> Iterator[str]:
    if given is not None:
        yield given
        return
    with temp_pg_database() as url:
        yield url
