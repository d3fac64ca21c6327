"""Recording customer messages: the database row is the promise that they get answered."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.store import InboundMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IncomingMessage:
    channel: str
    dedup_key: str
    account: str
    customer: str
    msg_type: str
    content: str


def record(msg: IncomingMessage, status: str = "received") -> int | None:
    """Stores the message once and returns its id; None for a retry of one already stored.

    The id is taken before the commit: reading it afterwards would reload the expired row
    (a second round trip on the callback's hot path, measured in bench/ack_latency)."""
    row = InboundMessage(
        channel=msg.channel,
        dedup_key=msg.dedup_key,
        account=msg.account,
        customer=msg.customer,
        msg_type=msg.msg_type,
        content=msg.content,
        status=status,
    )
    db.session.add(row)
    try:
        db.session.flush()
        message_id = row.id
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return None
    return message_id


def enqueue_answer(message_id: int) -> bool:
    """Queues the answer task; a broker outage is logged, and the sweeper retries later."""
    from app.tasks import answer_message

    try:
        answer_message.apply_async(
            (message_id,),
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        )
        return True
    except Exception as exc:  # broker down: the row stays 'received' and is swept up
        log.warning("could not queue message %s (%s); the sweeper will retry", message_id, exc)
        return False
