"""The sweeper: finds customer messages nobody is working on and queues them again.

A message stays `received` when its task was lost (the broker was down when it was
stored, or crashed with the queue in it), and `processing` when the worker that claimed it
died (its claim stops being renewed: ANSWER_CLAIM_LEASE_S). Celery beat runs ``sweep``
every ANSWER_SWEEP_EVERY_S. A message whose task the broker still holds is waiting its
turn and is left alone (app/messages/queued.py); one whose attempts are spent is failed,
and its customer told (app/messages/answering.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select

from app.channels import ChannelAPI
from app.extensions import db
from app.messages import answering, queued
from app.settings import Settings
from app.store import InboundMessage, MessageStatus


def sweep(
    settings: Settings,
    enqueue: Callable[[int], object],
    limit: int = 100,
    api: Callable[[InboundMessage], ChannelAPI] | None = None,
) -> list[int]:
    """Re-queues stale messages whose task is lost (never queued, or its worker died) and
    fails those whose attempts are spent, so none is re-queued forever. A message whose
    task the broker still holds is waiting its turn and is left alone (queued.py).
    Returns the ids re-queued."""
    stale = stale_message_ids(settings, limit)
    held = queued.waiting(settings) if stale else set()
    requeued = []
    for message_id in stale:
        msg = db.session.get(InboundMessage, message_id)
        if msg is None:
            continue
        if msg.attempts >= settings.answer_max_attempts:
            error = msg.error or "never finished"
            answering.give_up_if_spent(msg, error, settings, api(msg) if api else None)
            continue
        if msg.status == MessageStatus.RECEIVED and held is not None and message_id in held:
            continue
        enqueue(message_id)
        requeued.append(message_id)
    return requeued


def stale_message_ids(settings: Settings, limit: int = 100) -> list[int]:
    """Messages nobody is working on: queued but lost, or claimed by a worker that died."""
    now = datetime.now(UTC)
    cutoff = now - timedelta(seconds=settings.stale_message_after_s)
    lapsed = now - timedelta(seconds=settings.answer_claim_lease_s)
    rows = db.session.execute(
        select(InboundMessage.id)
        .where(
            or_(
                (InboundMessage.status == MessageStatus.RECEIVED)
                & (InboundMessage.updated_at < cutoff),
                (InboundMessage.status == MessageStatus.PROCESSING)
                & (InboundMessage.claimed_at < lapsed),
            )
        )
        .order_by(InboundMessage.id)
        .limit(limit)
    )
    return [r[0] for r in rows]
