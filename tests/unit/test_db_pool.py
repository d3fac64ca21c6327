"""A worker whose concurrency does not fit its database pool refuses to start, saying which
setting to raise (app/store/pool.py); one that fits starts."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support import BIN

# Starts Celery workers as processes: not the fast lane.
pytestmark = pytest.mark.slow

_ENV = {
    "DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    # Nothing listens here: a worker past the check would only retry connecting.
    "CELERY_BROKER_URL": "redis://127.0.0.1:9/0",
}


def _worker(concurrency: int, pool: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, **_ENV, **env}
    return subprocess.run(
        [str(BIN / "celery"), "-A", "app.worker", "worker", "--pool", pool, "-c", str(concurrency)],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_threads_worker_larger_than_its_pool_does_not_start_and_says_why() -> None:
    done = _worker(11, "threads")  # 33 connections at most; the default pool is 10 + 20
    assert done.returncode != 0
    assert "worker not started" in done.stderr
    assert "DB_MAX_OVERFLOW to at least 23" in done.stderr


def test_the_same_worker_starts_when_the_pool_is_raised() -> None:
    env = {**os.environ, **_ENV, "DB_MAX_OVERFLOW": "23"}
    args = [str(BIN / "celery"), "-A", "app.worker", "worker", "--pool", "threads", "-c", "11"]
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        seen = []
        for line in proc.stdout:  # type: ignore[union-attr]  # ends when the worker does
            seen.append(line)
            if "concurrency: 11" in line:  # its banner: past the check
                break
        assert any("concurrency: 11" in line for line in seen), "".join(seen)[-2000:]
        assert not any("worker not started" in line for line in seen)
    finally:
        proc.kill()
        proc.wait(timeout=30)
