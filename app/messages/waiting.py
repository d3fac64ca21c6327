"""Telling a customer whose question waits in a backlog that the answer is coming.

In a burst the model answers one question after another, and a customer whose question
is 40th in line would otherwise see nothing for minutes. A beat task (every 15 s) sends
each question still `received` after ANSWER_WAIT_NOTICE_AFTER_S one short message, once:
the notice is marked before it is sent (an atomic update), so two beats never both send
it. Only async delivery (the customer-service API): in passive mode WeChat's own retries
carry the pending reply.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from app.channels import ChannelAPI
from app.extensions import db
from app.settings import Settings
from app.store import InboundMessage, MessageStatus

log = logging.getLogger(__name__)


def notify_waiting(
    settings: Settings, api: Callable[[InboundMessage], ChannelAPI], limit: int = 200
) -> int:
    """Sends the wait notice to every question waiting longer than the setting; returns
    how many were sent."""
    if settings.answer_wait_notice_after_s <= 0:
        return 0
    now = datetime.now(UTC)
    cutoff = now - timedelta(seconds=settings.answer_wait_notice_after_s)
    ids = db.session.scalars(
        select(InboundMessage.id)
        .where(
            InboundMessage.status == MessageStatus.RECEIVED,
            InboundMessage.delivery == "custom",
            InboundMessage.wait_notice_at.is_(None),
            InboundMessage.created_at < cutoff,
        )
        .order_by(InboundMessage.id)
        .limit(limit)
    ).all()
    sent = 0
    for message_id in ids:
        marked = db.session.execute(
            update(InboundMessage)
            .where(InboundMessage.id == message_id, InboundMessage.wait_notice_at.is_(None))
            .values(wait_notice_at=now)
        )
        db.session.commit()
        if marked.rowcount != 1:
            continue  # another beat took it
        msg = db.session.get(InboundMessage, message_id)
        if msg is None:
            continue
        try:
            api(msg).send_text(msg.customer, settings.answer_wait_notice_text)
            sent += 1
        except Exception as exc:  # noqa: BLE001 - a courtesy: the answer still comes
            log.info("wait notice for message %s not sent: %s", message_id, exc)
    return sent
