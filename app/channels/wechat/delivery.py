"""What the reply to one WeChat callback request is, in either reply mode.

async (verified accounts): store, queue, acknowledge with an empty body; the worker sends
the answer through the customer-service API. passive (unverified accounts, where that API
answers 48001): each of WeChat's tries is held up to WECHAT_PASSIVE_WAIT_S for the
answer, and the answer is the reply (app/channels/wechat/passive.py). In both modes an answer
known at once (an FAQ hit, app/pipeline/instant.py) is the reply to the first request.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Literal

from app.channels.wechat import passive
from app.messages import inbound, intake
from app.messages.routing import Decision
from app.metrics import ANSWER_OUTCOMES
from app.pipeline import instant as instant_faq
from app.settings import Settings
from app.store import AnswerOutcome, MessageStatus


@dataclass(frozen=True)
class Reply:
    kind: Literal["empty", "text", "handoff"]
    text: str = ""
    outcome: str = ""  # for the callback metrics


_held: threading.BoundedSemaphore | None = None
_held_lock = threading.Lock()


def _hold_slots(settings: Settings) -> threading.BoundedSemaphore:
    """Per process: a held try occupies a web thread for up to 5.5 s."""
    global _held
    with _held_lock:
        if _held is None:
            _held = threading.BoundedSemaphore(settings.wechat_passive_max_held)
        return _held


def _text(text: str, outcome: str) -> Reply:
    return Reply("text", text, outcome) if text else Reply("empty", outcome=outcome)


def respond(
    incoming: inbound.IncomingMessage, decision: Decision, settings: Settings, arrived: float
) -> Reply:
    """Records the message once, queues its answer, and decides this request's reply;
    ``arrived`` is the request's time.monotonic(), from which tries are held."""
    held = settings.wechat_reply_mode == "passive"
    instant = None
    if decision.action == "answer" and incoming.msg_type in ("text", "voice"):
        instant = instant_faq.lookup(decision.text, settings)
    taken = intake.admit_and_record(
        incoming,
        decision,
        settings,
        delivery="passive" if held else "custom",
        answer=instant.text if instant else None,
        sources=instant.sources if instant else "",
        outcome=AnswerOutcome.FAQ if instant else "",
        outcome_detail=json.dumps(instant.detail, ensure_ascii=False) if instant else "",
        # async mode: no earlier answer can be waiting for a passive reply, so the
        # answer is recorded as this request's reply in the same commit (hot path).
        answer_sent=not held,
    )
    message_id = taken.message_id
    if message_id is None:
        return _retry(incoming, decision, settings, arrived)
    if taken.refused:  # rate limit or flood protection: a polite reply, nothing queued
        return _text(taken.decision.text, taken.refused)
    if instant is not None:
        ANSWER_OUTCOMES.labels(outcome=AnswerOutcome.FAQ, via=f"web:{instant.detail['via']}").inc()
        customer = f"{incoming.channel}:{incoming.customer}"
        instant_faq.remember(customer, decision.text, instant.text, settings)
        if not held:
            return Reply("text", instant.text, "instant")
        return _text(passive.carry(message_id), "instant")
    if decision.action == "answer":
        inbound.enqueue_answer(message_id)
    if decision.action == "handoff":
        return Reply("handoff", outcome="handoff")
    if decision.action == "reply":
        if held:  # with any answers of earlier messages still waiting for a reply
            return _text(passive.carry(message_id, decision.text), "reply")
        return Reply("text", decision.text, "reply")
    if decision.action == "answer" and held:
        return _hold(message_id, incoming, settings, arrived)
    return Reply("empty", outcome="queued" if decision.action == "answer" else "ignore")


def _retry(
    incoming: inbound.IncomingMessage, decision: Decision, settings: Settings, arrived: float
) -> Reply:
    """A retry of a message already stored: the same reply as before, or hold it again."""
    row = inbound.find(incoming.channel, incoming.dedup_key)
    if row is None:
        return Reply("empty", outcome="duplicate")
    message_id, stored, waits = row.id, row.passive_reply, row.delivery == "passive"
    refused = row.status == MessageStatus.IGNORED
    inbound.done_reading()
    if refused:  # turned away by admission: its polite reply went with the first try
        return Reply("empty", outcome="duplicate")
    if stored:  # the first reply may have been lost
        return Reply("text", stored, "duplicate")
    if decision.action == "handoff":
        return Reply("handoff", outcome="duplicate")
    if decision.action == "reply":
        return Reply("text", decision.text, "duplicate")
    if decision.action == "answer" and waits:
        return _hold(message_id, incoming, settings, arrived)
    return Reply("empty", outcome="duplicate")


def _hold(
    message_id: int, incoming: inbound.IncomingMessage, settings: Settings, arrived: float
) -> Reply:
    """Passive mode: waits for the answer during this try; lets the try lapse (WeChat
    retries) unless it is the last one or earlier answers are waiting to be carried."""
    last = passive.count_try(message_id)
    slots = _hold_slots(settings)
    if not slots.acquire(blocking=False):  # every hold slot busy: do not starve the acks
        pending = settings.wechat_passive_pending_text
        return _text(passive.carry(message_id, pending), "passive_busy")
    try:
        return _wait(message_id, incoming, settings, arrived, last)
    finally:
        slots.release()


def _wait(
    message_id: int,
    incoming: inbound.IncomingMessage,
    settings: Settings,
    arrived: float,
    last: bool,
) -> Reply:
    status = passive.wait_until_settled(message_id, arrived + settings.wechat_passive_wait_s)
    if status in (MessageStatus.READY, MessageStatus.ANSWERED):
        return _text(passive.carry(message_id), "passive")
    if status == MessageStatus.FAILED:
        return _text(passive.carry(message_id, passive.FAILED), "passive")
    if last or passive.has_undelivered(incoming.customer, incoming.account):
        return _text(
            passive.carry(message_id, settings.wechat_passive_pending_text), "passive_pending"
        )
    # No reply inside WeChat's 5 s: WeChat tries again, and that try is held in turn.
    time.sleep(max(0.0, arrived + passive.WECHAT_TIMEOUT_S - time.monotonic()))
    return Reply("empty", outcome="passive_lapsed")
