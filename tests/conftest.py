"""Session-wide real services: PostgreSQL database, Redis, milvus-lite server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
import redis

from app.knowledge import milvus_server
from tests.support import Processes, free_port, wait_until

PG_ADMIN = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.fixture(autouse=True)
def _stop_background_threads() -> Iterator[None]:
    """Apps built in this process (many, on ports where nothing listens) must not leave FAQ
    table threads retrying Milvus behind pymilvus's connection lock for the next tests."""
    yield
    from app import resources

    resources.stop_background()


@pytest.fixture(scope="session")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    procs = Processes(tmp_path_factory.mktemp("logs"))
    yield procs
    procs.stop_all()


@contextmanager
def temp_pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database (SQLAlchemy URL), dropped afterwards."""
    name = f"wxcs_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    with temp_pg_database() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    redis.Redis.from_url(REDIS_URL).flushdb()
    return REDIS_URL


@pytest.fixture(scope="session")
def milvus_uri(processes: Processes, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One milvus-lite server that every process reaches by URI, as in production."""
    port = free_port()
    data = tmp_path_factory.mktemp("milvus")
    processes.start(
        "milvus",
        milvus_server.command(data, "127.0.0.1", port),
        env=dict(os.environ),
    )
    import socket

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_until(listening, 60, "milvus-lite server")
    return f"http://127.0.0.1:{port}"
