"""Who is answering a message: a claim with a lease, and its holder.

A worker claims a message with an atomic status change (``claim``) and renews the claim
while it answers (``keep_claim``); a claim that stops being renewed belongs to a dead
worker, and the sweeper re-queues its message once the lease (ANSWER_CLAIM_LEASE_S)
lapses. Waiting out the lease after every crash made a burst with five worker kills drain
in 3.5x the time of the same burst without kills (bench/chaos.py). So a claim also names
its holder, "host/pid/start": a worker process starting on a host (``release_dead``)
takes back at once the claims of processes on that host that are gone, and those of an
earlier process with its own pid (a container restarted, where pids begin again).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update

from app.extensions import db
from app.store import InboundMessage, MessageStatus

log = logging.getLogger(__name__)

_STARTED = time.time_ns()


def holder() -> str:
    """This process, as a claim names it."""
    return f"{socket.gethostname()[:100]}/{os.getpid()}/{_STARTED}"


def claim(message_id: int, lease_s: int) -> bool:
    now = datetime.now(UTC)
    result = db.session.execute(
        update(InboundMessage)
        .where(
            InboundMessage.id == message_id,
            or_(
                InboundMessage.status == MessageStatus.RECEIVED,
                (InboundMessage.status == MessageStatus.PROCESSING)
                & (InboundMessage.claimed_at < now - timedelta(seconds=lease_s)),
            ),
        )
        .values(
            status=MessageStatus.PROCESSING,
            claimed_at=now,
            claimed_by=holder(),
            attempts=InboundMessage.attempts + 1,
        )
    )
    db.session.commit()
    return result.rowcount == 1


@contextmanager
def keep_claim(message_id: int, lease_s: int) -> Iterator[None]:
    """Renews the claim every third of the lease while the block runs, each time in a
    short transaction of its own: a claim that stops being renewed is a dead worker's."""
    engine = db.engine
    done = threading.Event()

    def renew() -> None:
        while not done.wait(lease_s / 3):
            try:
                with engine.begin() as conn:
                    conn.execute(
                        update(InboundMessage)
                        .where(
                            InboundMessage.id == message_id,
                            InboundMessage.status == MessageStatus.PROCESSING,
                        )
                        .values(claimed_at=datetime.now(UTC))
                    )
            except Exception as exc:  # noqa: BLE001 - the database is down: try again
                log.warning("could not renew the claim on message %s: %s", message_id, exc)

    thread = threading.Thread(target=renew, name=f"claim-{message_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _dead(claimed_by: str, host: str) -> bool:
    """Whether the claim's holder, a process of ``host``, is gone."""
    parts = claimed_by.split("/")
    if len(parts) != 3 or parts[0] != host or claimed_by == holder():
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    # Our own pid under another start: an earlier process (a container restarted).
    return pid == os.getpid() or not _alive(pid)


def release_dead(enqueue: Callable[[int], object]) -> list[int]:
    """Hands back the messages claimed by processes of this host that are gone, and queues
    them again; returns their ids. Safe to run in every process at its start: a message
    is released by one (the status change is conditional on the dead holder)."""
    host = socket.gethostname()[:100]
    rows = db.session.execute(
        select(InboundMessage.id, InboundMessage.claimed_by).where(
            InboundMessage.status == MessageStatus.PROCESSING,
            InboundMessage.claimed_by.like(f"{host}/%"),
        )
    ).all()
    released = []
    for message_id, claimed_by in rows:
        if not _dead(claimed_by, host):
            continue
        result = db.session.execute(
            update(InboundMessage)
            .where(
                InboundMessage.id == message_id,
                InboundMessage.status == MessageStatus.PROCESSING,
                InboundMessage.claimed_by == claimed_by,
            )
            .values(status=MessageStatus.RECEIVED, claimed_at=None, claimed_by="")
        )
        db.session.commit()
        if result.rowcount == 1:
            released.append(message_id)
    db.session.commit()
    for message_id in released:
        enqueue(message_id)
    if released:
        log.info("took back %d messages from workers of this host that died", len(released))
    return released
