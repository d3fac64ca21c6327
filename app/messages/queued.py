"""Which customer messages have an answer task waiting in the broker.

The sweeper re-queues a message left `received` for STALE_MESSAGE_AFTER_S, because its
task may have been lost (the broker was down when it was stored). A message can also
just be waiting its turn behind a backlog: re-queuing those every sweep grew the queue
to 1,098 tasks for 73 messages in a burst, and every duplicate took a worker thread and a
database connection to be skipped (issue 21). So the sweeper first asks the broker which
messages it holds a task for: waiting in the queue, or delivered to a worker and not yet
acknowledged (a retry counting down, a task started).

Read where the broker allows it: Redis (the queue's list and kombu's ``unacked`` hash)
and the embedded SQLite broker (kombu's message table; only visible rows, because kombu's
SQLAlchemy transport never restores a dead worker's). For other brokers ``waiting``
answers None (cannot tell) and every stale message is re-queued, as before; a duplicate
task only finds the message claimed or answered and does nothing.

On Redis a task that a worker had reserved when it died stays in ``unacked`` until the
broker's visibility timeout (an hour) gives it back, so only tasks taken in the last
``HELD_S`` count; a message a dead worker had claimed is re-queued when its claim lapses
(ANSWER_CLAIM_LEASE_S, app/messages/answering.py).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from app.settings import Settings

log = logging.getLogger(__name__)

TASK = "app.tasks.answer_message"
QUEUE = "llm"
#: A task a worker took longer ago than this is not held any more: the longest retry
#: countdown (300 s, app/tasks.py) and some slack.
HELD_S = 360.0


def waiting(settings: Settings, queue: str = QUEUE) -> set[int] | None:
    """Ids of the messages with an answer task in the broker; None when it cannot tell."""
    url = settings.celery_broker_url
    try:
        if url.startswith(("redis://", "rediss://")):
            return _message_ids(_redis_payloads(url, queue))
        if url.startswith("sqla+"):
            return _message_ids(_sqlalchemy_payloads(url.removeprefix("sqla+"), queue))
    except Exception as exc:  # noqa: BLE001 - broker unreadable: re-queue as before
        log.warning("could not list the queued answer tasks: %s", exc)
    return None


def _redis_payloads(url: str, queue: str) -> Iterable[bytes | str]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        yield from client.lrange(queue, 0, -1)
        # Delivered to a worker lately: running, or a retry counting down (at most 300 s).
        # Older ones are a dead worker's, which Redis gives back only after the visibility
        # timeout (an hour): those messages count as lost.
        recent = client.zrangebyscore("unacked_index", time.time() - HELD_S, "+inf")
        for raw in client.hmget("unacked", recent) if recent else []:
            entry = json.loads(raw) if raw else None  # [payload, exchange, routing key]
            if isinstance(entry, list) and entry:
                yield json.dumps(entry[0])
    finally:
        client.close()


def _sqlalchemy_payloads(url: str, queue: str) -> Iterable[str]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT m.payload FROM kombu_message m JOIN kombu_queue q "
                    "ON m.queue_id = q.id WHERE q.name = :queue AND m.visible"
                ),
                {"queue": queue},
            )
            yield from (r[0] for r in rows)
    finally:
        engine.dispose()


def _message_ids(payloads: Iterable[bytes | str]) -> set[int]:
    ids: set[int] = set()
    for raw in payloads:
        found = _message_id(raw)
        if found is not None:
            ids.add(found)
    return ids


def _message_id(raw: bytes | str) -> int | None:
    """The message id of one kombu payload of the answer task (protocol 2), else None."""
    try:
        payload: dict[str, Any] = json.loads(raw)
        if payload.get("headers", {}).get("task") != TASK:
            return None
        body = payload["body"]
        if payload.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return int(args[0])
    except (ValueError, KeyError, IndexError, TypeError):
        return None
