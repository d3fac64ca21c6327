"""Fixed-window counters: how many messages a key (a customer) sent in the current window.

Two backends with the same arithmetic: Redis (INCR + EXPIRE, one round trip) when the
deployment has Redis as its broker, else the database (one upsert in the caller's
transaction, so the count commits with the message it counts). Hand-written rather than
the `limits` package: it has no SQL storage (the embedded default has no Redis) and its
hit() hides the count, which the polite-reply-once rule needs.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

import redis
from sqlalchemy import case
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.store import RateCounter

log = logging.getLogger(__name__)

#: Redis keys live under this prefix in the broker's database.
REDIS_PREFIX = "wxcs:rate:"


class WindowCounter(Protocol):
    def hit(self, key: str, window_s: int, now: float | None = None) -> int:
        """Counts one event for `key`; returns the count in the current window, this one
        included (0 when the count is unavailable: limits fail open)."""
        ...

    def count(self, key: str, window_s: int, now: float | None = None) -> int:
        """The count of `key` in the current window, without counting (0 if unavailable)."""
        ...


def window_start(window_s: int, now: float | None = None) -> int:
    t = int(time.time() if now is None else now)
    return t - t % window_s


class RedisCounter:
    """INCR of ``prefix + key + window``, expiring with the window."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def hit(self, key: str, window_s: int, now: float | None = None) -> int:
        name = f"{REDIS_PREFIX}{key}:{window_start(window_s, now)}"
        try:
            pipe = self.client.pipeline(transaction=False)  # one round trip, no MULTI
            pipe.incr(name)
            pipe.expire(name, window_s + 1)
            count, _ = pipe.execute()
        except redis.RedisError as exc:
            # A limiter must never stop a customer's message: count nothing and go on.
            log.warning("rate limiter: Redis unavailable (%s); not limiting", exc)
            return 0
        return int(count)

    def count(self, key: str, window_s: int, now: float | None = None) -> int:
        try:
            value = self.client.get(f"{REDIS_PREFIX}{key}:{window_start(window_s, now)}")
        except redis.RedisError:
            return 0
        return int(value or 0)


class SQLCounter:
    """One row per key in rate_counters, reset when a new window begins; the upsert runs
    in the current session's transaction (the caller commits)."""

    def hit(self, key: str, window_s: int, now: float | None = None) -> int:
        start = window_start(window_s, now)
        dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
        ins = dialect.insert(RateCounter).values(key=key, window_start=start, count=1)
        same_window = RateCounter.window_start == ins.excluded.window_start
        stmt = ins.on_conflict_do_update(
            index_elements=[RateCounter.key],
            set_={
                "count": case((same_window, RateCounter.count + 1), else_=1),
                "window_start": ins.excluded.window_start,
            },
        ).returning(RateCounter.count)
        return int(db.session.execute(stmt).scalar_one())

    def count(self, key: str, window_s: int, now: float | None = None) -> int:
        row = db.session.get(RateCounter, key)
        if row is None or row.window_start != window_start(window_s, now):
            return 0
        return row.count


def counter_for(broker_url: str) -> WindowCounter:
    """Redis when the broker is Redis (shared by all processes and machines), else the
    database, which every process of the embedded default shares."""
    if broker_url.startswith(("redis://", "rediss://")):
        client = redis.Redis.from_url(broker_url, socket_timeout=0.5, socket_connect_timeout=0.5)
        return RedisCounter(client)
    return SQLCounter()
