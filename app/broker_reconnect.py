"""Keeps a Celery worker alive when the Redis broker goes away under it.

kombu 5.7's Redis channel, closed after the broker connection broke, tries to give its
unacknowledged messages back to Redis through a connection whose transport is already
released, and fails with ``AttributeError: 'NoneType' object has no attribute
'hostname'`` (kombu.transport.redis.Channel._connparams). That error is not one of the
transport's connection errors, so the consumer does not reconnect: the worker logs
"Unrecoverable error" and exits, and `flask serve` stops with it (tests/chaos/
test_outages.py reproduces it by crashing Redis under traffic; the threads pool hits it
whenever a task finishes while the connection is torn down). Reported upstream in
several forms (celery/celery#7705, #8030, #10205).

The fix here turns that case into the connection error it is: the close goes on, the
consumer reconnects, and the messages the worker held are re-queued by the sweeper
(app/messages/queued.py), which does not trust the broker to keep them.
"""

from __future__ import annotations

from typing import Any

_installed = False


def install() -> None:
    """Patches kombu's Redis channel once per process (idempotent)."""
    global _installed
    if _installed:
        return
    import redis
    from kombu.transport import redis as kombu_redis

    original = kombu_redis.Channel._connparams

    def _connparams(self: Any, asynchronous: bool = False) -> dict:
        transport = self.connection
        if transport is None or getattr(transport, "client", None) is None:
            raise redis.exceptions.ConnectionError("the broker connection is already closed")
        return original(self, asynchronous=asynchronous)

    kombu_redis.Channel._connparams = _connparams
    _installed = True
