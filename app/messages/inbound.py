"""Recording customer messages: the database row is the promise that they get answered."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.pipeline.privacy import mask_pii
from app.store import InboundMessage, MessageStatus, OutboundReply, ReplyStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IncomingMessage:
    channel: str
    dedup_key: str
    account: str
    customer: str
    msg_type: str
    content: str
    media_id: str = ""
    media_format: str = ""


def record(
    msg: IncomingMessage,
    status: str = MessageStatus.RECEIVED,
    *,
    delivery: str = "custom",
    answer: str | None = None,
    sources: str = "",
    answer_sent: bool = False,
    before_commit: Callable[[InboundMessage], None] | None = None,
    outcome: str = "",
    outcome_detail: str = "",
) -> int | None:
    """Stores the message once and returns its id; None for a retry of one already stored.

    With ``answer`` (known at once, e.g. an FAQ's stored answer) the message is stored
    ready for passive delivery, its answer beside it, in the same transaction; with
    ``answer_sent`` too, as answered by the reply to this very request (one commit);
    ``outcome`` and ``outcome_detail`` say what that answer was.
    `before_commit` sees the row once it is known to be new, inside the same transaction
    (admission: counted and judged once per message, committed with it).
    The id is taken before the commit: reading it afterwards would reload the expired row
    (a second round trip on the callback's hot path, measured in bench/ack_latency)."""
    row = InboundMessage(
        channel=msg.channel,
        dedup_key=msg.dedup_key,
        account=msg.account,
        customer=msg.customer,
        msg_type=msg.msg_type,
        content=mask_pii(msg.content),  # no phone, card or ID numbers at rest
        media_id=msg.media_id,
        media_format=msg.media_format,
        status=MessageStatus.READY if answer is not None else status,
        delivery="passive" if answer is not None else delivery,
        outcome=outcome,
        outcome_detail=outcome_detail,
    )
    if answer is not None and answer_sent:
        row.status, row.passive_reply = MessageStatus.ANSWERED, answer
    db.session.add(row)
    try:
        db.session.flush()
        message_id = row.id
        if before_commit is not None:
            before_commit(row)
        # Not turned away by admission:
        if answer is not None and row.status != MessageStatus.IGNORED:
            reply = OutboundReply(inbound_id=message_id, seq=0, content=answer, sources=sources)
            if answer_sent:
                reply.status, reply.via = ReplyStatus.SENT, "passive"
                reply.sent_at = datetime.now(UTC)
                reply.carried_by = message_id
            db.session.add(reply)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return None
    return message_id


def channel_of(message_id: int) -> str:
    """The channel a stored message came by (it answers through that channel's API)."""
    row = db.session.get(InboundMessage, message_id)
    return row.channel if row is not None else "wechat"


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


def find(channel: str, dedup_key: str) -> InboundMessage | None:
    return db.session.scalar(
        db.select(InboundMessage).where(
            InboundMessage.channel == channel, InboundMessage.dedup_key == dedup_key
        )
    )


def done_reading() -> None:
    """Ends the read transaction (returns the connection to the pool before a long wait)."""
    db.session.rollback()
