"""Passive replies: the answer rides on the HTTP reply to one of WeChat's callbacks.

Unverified accounts have no customer-service API (48001), so the only way to answer is
the reply to a callback, within WeChat's 5 s, on one of its three tries. A try is held
while the worker writes; an answer that misses all three tries is kept and carried by
the reply to the customer's next message, if that comes within WECHAT_PASSIVE_KEEP_S (an
answer days late, to a question long forgotten, would only confuse). Every answer piece
is claimed by exactly one reply (a conditional update), and the reply given to a try is
stored so that WeChat's retry of the same message gets the very same text.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import exists, select, update

from app.channels.wechat.split import MAX_BYTES
from app.extensions import db
from app.store import InboundMessage, MessageStatus, OutboundReply, ReplyStatus

#: WeChat drops a callback after 5 s; a try we let lapse is answered only after this.
WECHAT_TIMEOUT_S = 5.5
#: WeChat's third try comes about 10 s after the first; later than this it is the last.
LAST_TRY_AFTER_S = 9.0
POLL_S = 0.1
SEPARATOR = "\n\n"
MORE = "（内容较长，给我发任意消息即可查看后续。）"
FAILED = "抱歉，这个问题我暂时没能回答。您可以回复“人工”联系人工客服。"
SETTLED = (MessageStatus.READY, MessageStatus.ANSWERED, MessageStatus.FAILED)


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def count_try(message_id: int) -> bool:
    """Counts one of WeChat's tries of the message; True when it is the last one."""
    db.session.execute(
        update(InboundMessage)
        .where(InboundMessage.id == message_id)
        .values(callback_tries=InboundMessage.callback_tries + 1)
    )
    tries, created = db.session.execute(
        select(InboundMessage.callback_tries, InboundMessage.created_at).where(
            InboundMessage.id == message_id
        )
    ).one()
    db.session.commit()
    age = (datetime.now(UTC) - _aware(created)).total_seconds()
    return tries >= 3 or age >= LAST_TRY_AFTER_S


def wait_until_settled(message_id: int, deadline: float) -> str:
    """Polls the message's status until its answer is stored (or it failed) or the
    monotonic ``deadline`` passes; returns the last status seen."""
    while True:
        status = db.session.scalar(
            select(InboundMessage.status).where(InboundMessage.id == message_id)
        )
        db.session.rollback()  # end the transaction: the next poll sees new commits
        if status in SETTLED or time.monotonic() + POLL_S >= deadline:
            return status or ""
        time.sleep(POLL_S)


def has_undelivered(customer: str, account: str) -> bool:
    """Answers of this customer's earlier messages wait for a reply to carry them."""
    found = db.session.scalar(select(_undelivered(customer, account).exists()))
    db.session.rollback()
    return bool(found)


def _undelivered(customer: str, account: str):  # noqa: ANN202 - a select
    keep_s = current_app.extensions["settings"].wechat_passive_keep_s
    oldest = datetime.now(UTC) - timedelta(seconds=keep_s)
    return (
        select(OutboundReply)
        .join(InboundMessage)
        .where(
            InboundMessage.customer == customer,
            InboundMessage.account == account,
            InboundMessage.delivery == "passive",
            InboundMessage.status == MessageStatus.READY,
            InboundMessage.created_at >= oldest,
            OutboundReply.status == ReplyStatus.PENDING,
        )
        .order_by(InboundMessage.id, OutboundReply.seq)
    )


def carry(message_id: int, note: str | None = None) -> str:
    """The passive reply to (a try of) message ``message_id``: the customer's answers not
    yet delivered, oldest first and this message's own among them, as many as fit in one
    reply, then ``note``. Claimed and stored in one transaction; "" when there is nothing."""
    msg = db.session.execute(
        select(InboundMessage).where(InboundMessage.id == message_id).with_for_update()
    ).scalar_one()
    if msg.passive_reply:  # an earlier try was given this; a retry gets it again
        text = msg.passive_reply
        db.session.commit()
        return text
    parts: list[str] = []
    carried: set[int] = set()
    left_behind = False
    reserve = len((SEPARATOR + note).encode()) if note else 0
    used = 0
    now = datetime.now(UTC)
    for piece in db.session.scalars(_undelivered(msg.customer, msg.account)).all():
        size = len(piece.content.encode()) + (len(SEPARATOR.encode()) if parts else 0)
        if used + size + reserve > MAX_BYTES:
            left_behind = True
            break
        claimed = db.session.execute(
            update(OutboundReply)
            .where(OutboundReply.id == piece.id, OutboundReply.status == ReplyStatus.PENDING)
            .values(status=ReplyStatus.SENT, via="passive", carried_by=message_id, sent_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed:
            parts.append(piece.content)
            carried.add(piece.inbound_id)
            used += size
    if left_behind and note is None:
        note = MORE
    if note and used + len((SEPARATOR + note).encode()) <= MAX_BYTES:
        parts.append(note)
    for inbound_id in carried:
        db.session.execute(
            update(InboundMessage)
            .where(
                InboundMessage.id == inbound_id,
                InboundMessage.status == MessageStatus.READY,
                ~exists().where(
                    OutboundReply.inbound_id == inbound_id,
                    OutboundReply.status == ReplyStatus.PENDING,
                ),
            )
            .values(status=MessageStatus.ANSWERED)
            .execution_options(synchronize_session=False)
        )
    text = SEPARATOR.join(parts)
    if text:
        msg.passive_reply = text
    db.session.commit()
    return text
