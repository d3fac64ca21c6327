"""The window counters behind per-customer rate limiting, on real Redis, SQLite and
PostgreSQL: counts within a window, a fresh count in the next, and failing open."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask

from app import create_app
from app.extensions import db
from app.safety.ratelimit import REDIS_PREFIX, RedisCounter, SQLCounter, counter_for
from app.settings import load_settings
from tests.conftest import temp_pg_database
from tests.support import free_port

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
T0 = 1_800_000_000.0  # a window boundary for 60 s windows


def _hits(counter: object, key: str, times: list[float]) -> list[int]:
    return [counter.hit(key, 60, now=t) for t in times]  # type: ignore[attr-defined]


def test_redis_counter_counts_per_window_and_expires() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(*client.keys(REDIS_PREFIX + "t:*") or ["-"])
    counter = counter_for(REDIS_URL)
    assert isinstance(counter, RedisCounter)
    assert _hits(counter, "t:alice", [T0, T0 + 1, T0 + 59, T0 + 60, T0 + 61]) == [1, 2, 3, 1, 2]
    assert _hits(counter, "t:bob", [T0 + 2]) == [1]
    ttl = client.ttl(f"{REDIS_PREFIX}t:alice:{int(T0) + 60}")
    assert 0 < ttl <= 61


def test_redis_down_counts_nothing() -> None:
    counter = counter_for(f"redis://127.0.0.1:{free_port()}/0")
    assert counter.hit("t:carol", 60) == 0


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    def app_for(url: str) -> Flask:
        app = create_app(load_settings(data_dir=tmp_path, database_url=url))
        with app.app_context():
            db.create_all()
        return app

    if request.param == "sqlite":
        app = app_for(f"sqlite:///{tmp_path / 'rate.db'}")
        with app.app_context():
            yield app
        return
    with temp_pg_database() as url:
        app = app_for(url)
        with app.app_context():
            yield app
            db.session.remove()
            db.engine.dispose()


def test_sql_counter_counts_per_window_in_the_callers_transaction(store: Flask) -> None:
    counter = counter_for(store.extensions["settings"].celery_broker_url)
    assert isinstance(counter, SQLCounter)
    assert _hits(counter, "t:alice", [T0, T0 + 30]) == [1, 2]
    db.session.rollback()  # not committed: the count goes with the message it counted
    assert _hits(counter, "t:alice", [T0 + 31, T0 + 32]) == [1, 2]
    db.session.commit()
    assert _hits(counter, "t:alice", [T0 + 59, T0 + 60, T0 + 200]) == [3, 1, 1]
    assert _hits(counter, "t:bob", [T0 + 60]) == [1]
    db.session.commit()
    rows = db.session.execute(db.text("SELECT count(*) FROM rate_counters")).scalar()
    assert rows == 2  # one row per customer, reused window after window
