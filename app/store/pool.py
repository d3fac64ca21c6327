"""Whether a Celery worker's concurrency fits its database connection pool.

An answer takes a connection for a moment at a time (claim, store, mark sent), its
typing indicator one more for the token read, and its claim's renewal one more: so a
worker whose tasks share one process (``--pool threads``, gevent, eventlet) needs up to
three connections per task running at once. When the pool is smaller, answers wait
DB_POOL_TIMEOUT_S for a connection and then fail; the worker refuses to start instead,
saying which setting to raise.
"""

from __future__ import annotations

from app.settings import Settings

#: Connections one running answer may hold at the same moment (itself, its typing thread,
#: its claim's renewal).
PER_TASK = 3
_SHARED = ("thread", "gevent", "eventlet")  # "threads", celery.concurrency.thread


class PoolTooSmall(RuntimeError):
    pass


def needed(concurrency: int, pool: str) -> int:
    """Connections one worker process needs at most: tasks in one process share its pool."""
    shared = any(name in pool.lower() for name in _SHARED)
    return PER_TASK * (max(1, concurrency) if shared else 1)


def check(settings: Settings, concurrency: int, pool: str) -> None:
    """Raises PoolTooSmall when the worker's tasks could wait for connections."""
    if settings.database_url.startswith("sqlite"):
        return
    have = settings.db_pool_size + settings.db_max_overflow
    need = needed(concurrency, pool)
    if need > have:
        raise PoolTooSmall(
            f"this worker runs {concurrency} tasks at once in one process ({pool} pool) and "
            f"may need {need} database connections, but DB_POOL_SIZE + DB_MAX_OVERFLOW is "
            f"{have}: raise DB_MAX_OVERFLOW to at least {need - settings.db_pool_size} "
            f"(or lower the worker's -c)"
        )
