"""Answering a stored customer message exactly once.

A worker claims the message (an atomic status change with a lease), stores the answer
before sending it, and marks each piece sent; so a retry after a crash or an outage
neither regenerates nor resends what already went out.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select

from app.channels import ChannelAPI
from app.channels.api_client import WeChatAPIError
from app.channels.kf import CHANNEL as KF
from app.channels.kf.api import REPLIES_PER_MESSAGE as KF_REPLIES_PER_MESSAGE
from app.channels.kf.api import SESSION_STATE_INVALID as KF_PERSON_HOLDS
from app.channels.wechat.split import MAX_PIECES, split_message
from app.channels.wechat.typing import typing_indicator
from app.extensions import db
from app.messages import claims, images, voice
from app.metrics import ANSWER_OUTCOMES, ANSWER_SECONDS, ANSWERS
from app.ocr import OcrEngine
from app.pipeline.answer import Answer
from app.pipeline.privacy import mask_pii
from app.settings import Settings
from app.speech import SpeechEngine
from app.store import (
    UNANSWERED,
    AnswerOutcome,
    InboundMessage,
    MessageStatus,
    OutboundReply,
    ReplyStatus,
)

log = logging.getLogger(__name__)

#: What a customer hears when their question could not be answered at all.
FAILED_TEXT = "抱歉，系统暂时没能处理您的问题。请稍后再问一次，或回复“人工”，由人工客服为您处理。"


class Answerer(Protocol):
    """What answers a customer (ANSWER_BACKEND): the answer pipeline, or a Dify app.

    One that keeps the conversation outside this service (the Dify app) also has
    ``earlier_answer(question, customer=, since=)``: its answer from before a retry."""

    def answer(self, question: str, *, customer: str | None = None) -> Answer: ...


#: How far back a customer's unanswered message still holds their next one back.
ORDER_HORIZON = timedelta(hours=1)


def earlier_pending(message_id: int) -> bool:
    """Whether an earlier message of the same customer is still waiting or being answered:
    answers go out in the order the questions came (two answered at once could arrive the
    other way round, and the second would be answered without the first in its context)."""
    msg = db.session.get(InboundMessage, message_id)
    if msg is None:
        return False
    earlier = db.session.scalar(
        select(InboundMessage.id)
        .where(
            InboundMessage.channel == msg.channel,
            InboundMessage.customer == msg.customer,
            InboundMessage.id < msg.id,
            InboundMessage.status.in_(UNANSWERED),
            InboundMessage.created_at > datetime.now(UTC) - ORDER_HORIZON,
        )
        .limit(1)
    )
    db.session.commit()  # no connection held while the task waits
    return earlier is not None


def answer_message(
    message_id: int,
    settings: Settings,
    pipeline: Answerer,
    api: ChannelAPI,
    ocr: Callable[[], OcrEngine] | None = None,
    speech: Callable[[], SpeechEngine] | None = None,
) -> str:
    """Returns what happened: answered, ready (stored for a passive reply), skipped (someone
    else has it or it is done), later (the customer's earlier message comes first) or
    failed. Raises when a retry may succeed."""
    if earlier_pending(message_id):
        return "later"
    if not claims.claim(message_id, settings.answer_claim_lease_s):
        return "skipped"
    with claims.keep_claim(message_id, settings.answer_claim_lease_s):
        return _answer_claimed(message_id, settings, pipeline, api, ocr, speech)


def _answer_claimed(
    message_id: int,
    settings: Settings,
    pipeline: Answerer,
    api: ChannelAPI,
    ocr: Callable[[], OcrEngine] | None,
    speech: Callable[[], SpeechEngine] | None,
) -> str:
    msg = db.session.get(InboundMessage, message_id)
    assert msg is not None
    try:
        replies = list(msg.replies)
        if not replies:
            composed = _compose_answer(msg, settings, pipeline, api, ocr, speech)
            sources = json.dumps(composed.sources, ensure_ascii=False)
            pieces = split_message(composed.text, max_pieces=max_pieces(msg))
            for seq, piece in enumerate(pieces):
                db.session.add(
                    OutboundReply(inbound_id=msg.id, seq=seq, content=piece, sources=sources)
                )
            msg.outcome = composed.outcome
            msg.outcome_detail = json.dumps(composed.detail, ensure_ascii=False)
            db.session.commit()
            ANSWER_OUTCOMES.labels(outcome=composed.outcome, via=composed.via).inc()
            replies = list(msg.replies)
        if msg.delivery == "passive":
            # No customer-service API (48001): a callback of this customer carries it.
            msg.status = MessageStatus.READY
            db.session.commit()
            ANSWERS.labels(outcome=MessageStatus.READY).inc()
            return MessageStatus.READY
        for reply in replies:
            if reply.status == ReplyStatus.SENT:
                continue
            api.send_text(msg.customer, reply.content)
            reply.status, reply.sent_at, reply.via = ReplyStatus.SENT, datetime.now(UTC), "custom"
            db.session.commit()
        if msg.outcome == AnswerOutcome.REFUSED and msg.channel == KF:
            _hand_over_after_refusal(msg, api)
        msg.status = MessageStatus.ANSWERED
        db.session.commit()
        ANSWERS.labels(outcome=MessageStatus.ANSWERED).inc()
        return MessageStatus.ANSWERED
    except WeChatAPIError as exc:
        db.session.rollback()
        if exc.retryable:
            if give_up_if_spent(msg, str(exc), settings, api):
                return MessageStatus.FAILED
            _release(msg, str(exc))
            raise
        if msg.channel == KF and exc.errcode == KF_PERSON_HOLDS:
            # 微信客服: people took the session meanwhile; theirs to answer, not a failure.
            _held_by_people(msg, str(exc), exc.errcode, exc.errmsg)
            log.info("message %s: people hold the session, not answered by the bot", message_id)
            return MessageStatus.HANDOFF
        _fail(msg, str(exc), exc.errcode, exc.errmsg)
        log.error("message %s not deliverable: %s", message_id, exc)
        return MessageStatus.FAILED
    except Exception as exc:
        db.session.rollback()
        if give_up_if_spent(msg, repr(exc), settings, api):
            return MessageStatus.FAILED
        _release(msg, repr(exc))
        raise


@dataclass(frozen=True)
class Composed:
    """An answer as it is stored: its text, sources, and what it was (the outcome)."""

    text: str
    sources: list[dict[str, Any]]
    outcome: str
    detail: dict[str, Any]

    @property
    def via(self) -> str:
        """The metrics label of how it came about."""
        return str(self.detail.get("via") or self.detail.get("check") or "")


def _composed(answer: Answer, started: float) -> Composed:
    detail = dict(answer.detail)
    if answer.sources and answer.outcome == AnswerOutcome.GENERATED:
        detail.setdefault("sources", answer.sources)
    detail["total_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return Composed(answer.text, answer.sources, answer.outcome, detail)


def _compose_answer(
    msg: InboundMessage,
    settings: Settings,
    pipeline: Answerer,
    api: ChannelAPI,
    ocr: Callable[[], OcrEngine] | None,
    speech: Callable[[], SpeechEngine] | None = None,
) -> Composed:
    """The answer for ``msg`` and what it was; images are read and voice heard first."""
    started = time.perf_counter()
    question = msg.content
    if msg.msg_type == "image" and not question:
        if ocr is None:
            raise RuntimeError("an image message needs an OCR engine")
        found = images.image_question(msg, settings, api, ocr())
        if found.question is None:
            reply = found.reply or images.IMAGE_NO_TEXT
            return Composed(reply, [], AnswerOutcome.REPLIED, {"via": "no text in the picture"})
        # Kept, so a retry after a failed send neither downloads nor reads it again.
        question = found.question
        msg.content = mask_pii(question)  # no phone, card or ID numbers at rest
        db.session.commit()
    if msg.msg_type == "voice" and not question:
        if speech is None:
            raise RuntimeError("a voice message needs a speech engine")
        heard = voice.voice_question(msg, settings, api, speech)
        if heard.question is None:
            reply = heard.reply or voice.VOICE_NOT_NOW
            return Composed(reply, [], AnswerOutcome.REPLIED, {"via": "voice not understood"})
        question = heard.question
        msg.content = mask_pii(question)  # kept: a retry does not transcribe it again
        db.session.commit()
    openid, customer = msg.customer, f"{msg.channel}:{msg.customer}"
    retried, since = msg.attempts > 1, msg.created_at
    typing = (
        typing_indicator(api, openid)
        if settings.wechat_typing and msg.delivery == "custom"
        else nullcontext()
    )
    # No connection is held while the model writes (seconds to minutes): with eight answers
    # at once, each holding one, the pool ran dry and answers failed (issue 21).
    db.session.commit()
    with typing, ANSWER_SECONDS.time():
        # A retry asks a Dify app again only if it did not answer the first time.
        earlier = getattr(pipeline, "earlier_answer", None)
        answer = None
        if earlier is not None and retried:
            answer = earlier(question, customer=customer, since=since)
        if answer is None:
            answer = pipeline.answer(question, customer=customer)
    return _composed(answer, started)


def max_pieces(msg: InboundMessage) -> int:
    """How many texts an answer may be split into: 微信客服 takes 5 replies per customer
    message (a sixth is 95001), the wait notice (app/messages/waiting.py) among them."""
    if msg.channel != KF:
        return MAX_PIECES
    return KF_REPLIES_PER_MESSAGE - (1 if msg.wait_notice_at is not None else 0)


def _hand_over_after_refusal(msg: InboundMessage, api: ChannelAPI) -> None:
    """微信客服 hands the session to people (``KfChannel.hand_over``) once the bot said it
    cannot help, after saying so (once moved, send_msg is refused); the other channels
    leave it to the customer (the refusal tells them to write "人工"). Repeated after a
    crash, it changes nothing."""
    hand_over = getattr(api, "hand_over", None)
    if hand_over is None:
        return
    try:
        hand_over(msg.customer, reason="the bot could not answer", summary=msg.content)
    except Exception as exc:  # noqa: BLE001 - the refusal went out; the customer may ask
        log.warning("message %s: the session was not handed to people: %s", msg.id, exc)


def _held_by_people(msg: InboundMessage, error: str, errcode: int | None, errmsg: str) -> None:
    _end(msg, MessageStatus.HANDOFF, AnswerOutcome.HANDED_OFF, error, errcode, errmsg)
    ANSWER_OUTCOMES.labels(outcome=AnswerOutcome.HANDED_OFF, via="with people").inc()


def _fail(msg: InboundMessage, error: str, errcode: int | None, errmsg: str) -> None:
    _end(msg, MessageStatus.FAILED, AnswerOutcome.FAILED, error, errcode, errmsg)
    ANSWER_OUTCOMES.labels(outcome=AnswerOutcome.FAILED, via="").inc()


def _end(
    msg: InboundMessage,
    status: MessageStatus,
    outcome: AnswerOutcome,
    error: str,
    errcode: int | None,
    errmsg: str,
) -> None:
    """The message ended unanswered (``status``), its unsent pieces marked failed."""
    msg.status, msg.error, msg.outcome = status, error[:2000], outcome
    for reply in msg.replies:
        if reply.status != ReplyStatus.SENT:
            reply.status, reply.errcode, reply.errmsg = ReplyStatus.FAILED, errcode, errmsg[:2000]
    db.session.commit()
    ANSWERS.labels(outcome=status).inc()


def give_up_if_spent(
    msg: InboundMessage, error: str, settings: Settings, api: ChannelAPI | None = None
) -> bool:
    """Fails the message for good once its attempts are used up (ANSWER_MAX_ATTEMPTS); the
    customer is told so, rather than left waiting (``tell_failed``)."""
    if msg.attempts < settings.answer_max_attempts:
        return False
    replies = list(msg.replies)
    if replies and all(r.status == ReplyStatus.SENT for r in replies):
        # Every piece went out; a worker died between the last send and marking it (or its
        # claim lapsed meanwhile): the customer has the answer, so it is answered, not failed.
        msg.status = MessageStatus.ANSWERED
        db.session.commit()
        ANSWERS.labels(outcome=MessageStatus.ANSWERED).inc()
        log.info("message %s: every reply was sent before its attempts ran out", msg.id)
        return True
    reason = f"gave up after {msg.attempts} attempts; last error: {error}"
    _fail(msg, reason, None, reason)
    log.error("message %s failed: %s", msg.id, reason)
    if api is not None:
        tell_failed(msg, api)
    return True


def tell_failed(msg: InboundMessage, api: ChannelAPI) -> None:
    """Sends FAILED_TEXT to the customer of a message that failed before any answer was
    stored (the model or a dependency kept failing), once: the reply row is the record.
    Where the answer itself was stored, its sending is what failed: nothing more is sent."""
    if msg.delivery != "custom" or list(msg.replies):
        return
    reply = OutboundReply(inbound_id=msg.id, seq=0, content=FAILED_TEXT, sources="[]")
    db.session.add(reply)
    db.session.commit()
    try:
        api.send_text(msg.customer, FAILED_TEXT)
    except Exception as exc:  # noqa: BLE001 - the message is failed either way
        reply.status, reply.errmsg = ReplyStatus.FAILED, str(exc)[:2000]
        log.warning("message %s: the failure notice was not sent either: %s", msg.id, exc)
    else:
        reply.status, reply.sent_at, reply.via = ReplyStatus.SENT, datetime.now(UTC), "custom"
    db.session.commit()


def _release(msg: InboundMessage, error: str) -> None:
    """Hands the message back for a retry (by Celery, or by the sweeper)."""
    msg.status, msg.error, msg.claimed_at = MessageStatus.RECEIVED, error[:2000], None
    db.session.commit()
