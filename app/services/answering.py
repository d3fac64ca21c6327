"""Answering a stored customer message exactly once.

A worker claims the message (an atomic status change with a lease), stores the answer
before sending it, and marks each piece sent; so a retry after a crash or an outage
neither regenerates nor resends what already went out.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update

from app.channels.wechat.api import OfficialAccountAPI, WeChatAPIError
from app.channels.wechat.split import split_message
from app.extensions import db
from app.metrics import ANSWER_SECONDS, ANSWERS
from app.pipeline.answer import AnswerPipeline
from app.settings import Settings
from app.store import InboundMessage, OutboundReply

log = logging.getLogger(__name__)


def claim(message_id: int, lease_s: int) -> bool:
    now = datetime.now(UTC)
    result = db.session.execute(
        update(InboundMessage)
        .where(
            InboundMessage.id == message_id,
            or_(
                InboundMessage.status == "received",
                (InboundMessage.status == "processing")
                & (InboundMessage.claimed_at < now - timedelta(seconds=lease_s)),
            ),
        )
        .values(status="processing", claimed_at=now, attempts=InboundMessage.attempts + 1)
    )
    db.session.commit()
    return result.rowcount == 1


def answer_message(
    message_id: int, settings: Settings, pipeline: AnswerPipeline, api: OfficialAccountAPI
) -> str:
    """Returns what happened: answered, skipped (someone else has it or it is done) or failed."""
    if not claim(message_id, settings.stale_message_after_s):
        return "skipped"
    msg = db.session.get(InboundMessage, message_id)
    assert msg is not None
    try:
        replies = list(msg.replies)
        if not replies:
            with ANSWER_SECONDS.time():
                answer = pipeline.answer(msg.content)
            sources = json.dumps(answer.sources, ensure_ascii=False)
            for seq, piece in enumerate(split_message(answer.text)):
                db.session.add(
                    OutboundReply(inbound_id=msg.id, seq=seq, content=piece, sources=sources)
                )
            db.session.commit()
            replies = list(msg.replies)
        for reply in replies:
            if reply.status == "sent":
                continue
            api.send_text(msg.customer, reply.content)
            reply.status, reply.sent_at = "sent", datetime.now(UTC)
            db.session.commit()
        msg.status = "answered"
        db.session.commit()
        ANSWERS.labels(outcome="answered").inc()
        return "answered"
    except WeChatAPIError as exc:
        db.session.rollback()
        if exc.retryable:
            _release(msg, str(exc))
            raise
        msg.status, msg.error = "failed", str(exc)
        for reply in msg.replies:
            if reply.status != "sent":
                reply.status, reply.errcode, reply.errmsg = "failed", exc.errcode, exc.errmsg
        db.session.commit()
        ANSWERS.labels(outcome="failed").inc()
        log.error("message %s not deliverable: %s", message_id, exc)
        return "failed"
    except Exception as exc:
        db.session.rollback()
        _release(msg, repr(exc))
        raise


def _release(msg: InboundMessage, error: str) -> None:
    """Hands the message back for a retry (by Celery, or by the sweeper)."""
    msg.status, msg.error, msg.claimed_at = "received", error[:2000], None
    db.session.commit()


def stale_message_ids(settings: Settings, limit: int = 100) -> list[int]:
    """Messages nobody is working on: queued but lost, or claimed by a worker that died."""
    cutoff = datetime.now(UTC) - timedelta(seconds=settings.stale_message_after_s)
    rows = db.session.execute(
        select(InboundMessage.id)
        .where(
            or_(
                (InboundMessage.status == "received") & (InboundMessage.updated_at < cutoff),
                (InboundMessage.status == "processing") & (InboundMessage.claimed_at < cutoff),
            )
        )
        .order_by(InboundMessage.id)
        .limit(limit)
    )
    return [r[0] for r in rows]
