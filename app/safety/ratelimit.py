"""Fixed-window counters: how many messages a key (a customer) sent in the current window;
and failure logs (a count and the last failure's time) for the sign-in throttle's backoff.

Two backends with the same arithmetic: Redis (INCR + EXPIRE, one round trip) when the
deployment has Redis as its broker, else the database (one upsert in the caller's
transaction, so the count commits with the message it counts). Hand-written rather than
the `limits` package: it has no SQL storage (the embedded default has no Redis) and its
hit() hides the count, which the polite-reply-once rule needs.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Protocol

import redis
from sqlalchemy import case, delete
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
    client = _redis_client(broker_url)
    return RedisCounter(client) if client is not None else SQLCounter()


def _redis_client(broker_url: str) -> redis.Redis | None:
    if broker_url.startswith(("redis://", "rediss://")):
        return redis.Redis.from_url(broker_url, socket_timeout=0.5, socket_connect_timeout=0.5)
    return None


# --- failures with their time: what exponential backoff needs (staff sign-in) -------------


class FailureLog(Protocol):
    """Per key: how many failures in a row, and when the last was. A key is forgotten
    ``window_s`` after its last failure. Unavailable storage reads as no failures."""

    def get(self, key: str, window_s: int, now: float | None = None) -> tuple[int, float]:
        """(failures, time of the last one), or (0, 0.0) for a forgotten key."""
        ...

    def hit(self, key: str, window_s: int, now: float | None = None) -> int:
        """Counts one failure now; returns the count, this one included (atomic, so that
        concurrent callers each see a different count)."""
        ...

    def clear(self, key: str) -> None: ...


class RedisFailureLog:
    """A hash {n: count, t: last failure} per key, expiring ``window_s`` after the last."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def get(self, key: str, window_s: int, now: float | None = None) -> tuple[int, float]:
        try:
            count, last = self.client.hmget(REDIS_PREFIX + key, ["n", "t"])
        except redis.RedisError as exc:
            log.warning("failure log: Redis unavailable (%s); not throttling", exc)
            return 0, 0.0
        return int(count or 0), float(last or 0.0)

    def hit(self, key: str, window_s: int, now: float | None = None) -> int:
        name = REDIS_PREFIX + key
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hincrby(name, "n", 1)
            pipe.hset(name, "t", time.time() if now is None else now)
            pipe.expire(name, window_s)
            count, _, _ = pipe.execute()
        except redis.RedisError as exc:
            log.warning("failure log: Redis unavailable (%s); not throttling", exc)
            return 0
        return int(count)

    def clear(self, key: str) -> None:
        try:
            self.client.delete(REDIS_PREFIX + key)
        except redis.RedisError:
            pass  # forgotten at the window's end anyway


class SQLFailureLog:
    """Rows of rate_counters whose ``window_start`` is the time of the last failure (whole
    seconds); each change is committed at once, so other processes see it."""

    def get(self, key: str, window_s: int, now: float | None = None) -> tuple[int, float]:
        row = db.session.get(RateCounter, key, populate_existing=True)
        t = time.time() if now is None else now
        if row is None or row.window_start <= t - window_s:
            return 0, 0.0
        return row.count, float(row.window_start)

    def hit(self, key: str, window_s: int, now: float | None = None) -> int:
        # Rounded up: a wait measured from it is never shorter than asked for.
        t = math.ceil(time.time() if now is None else now)
        dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
        ins = dialect.insert(RateCounter).values(key=key, window_start=t, count=1)
        recent = RateCounter.window_start > t - window_s
        stmt = ins.on_conflict_do_update(
            index_elements=[RateCounter.key],
            set_={"count": case((recent, RateCounter.count + 1), else_=1), "window_start": t},
        ).returning(RateCounter.count)
        count = int(db.session.execute(stmt).scalar_one())
        if count == 1:  # now and then: rows of keys nobody failed for since (guessed names)
            prefix = key.split(":", 1)[0] + ":"
            db.session.execute(
                delete(RateCounter).where(
                    RateCounter.key.startswith(prefix, autoescape=True),
                    RateCounter.window_start <= t - window_s,
                )
            )
        db.session.commit()
        return count

    def clear(self, key: str) -> None:
        db.session.execute(delete(RateCounter).where(RateCounter.key == key))
        db.session.commit()


def failure_log_for(broker_url: str) -> FailureLog:
    """Redis when the broker is Redis, else the database (as ``counter_for``)."""
    client = _redis_client(broker_url)
    return RedisFailureLog(client) if client is not None else SQLFailureLog()
