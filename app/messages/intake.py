"""Taking in one verified customer message, whichever channel it came by.

The controllers (/wechat, /wecom) authenticate, decrypt and parse; from the plain fields
on, every channel is the same: decide what the message needs, store it once (a retry of
the same MsgId stores nothing and queues nothing), admit questions past the rate limit
and flood protection, and queue the answer.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, replace
from typing import Any

from app.channels.wechat.security import CallbackRejected
from app.inputs import fit
from app.messages import admission, inbound
from app.messages.inbound import IncomingMessage
from app.messages.routing import Decision, route
from app.metrics import ANSWER_OUTCOMES
from app.pipeline import instant as instant_faq
from app.settings import Settings
from app.store import AnswerOutcome, InboundMessage, MessageStatus

log = logging.getLogger(__name__)

#: Fields every message and event carries (WeChat's and WeCom's alike).
REQUIRED_FIELDS = ("ToUserName", "FromUserName", "CreateTime", "MsgType")
#: What the platforms' ids are made of: OpenIDs ([A-Za-z0-9_-], 28), WeCom UserIDs
#: (letters, digits and "_-@.", at most 64), original ids (gh_...) and CorpIDs.
PLATFORM_ID = re.compile(r"[A-Za-z0-9_\-@.]+")
#: Message types the platforms send (routing answers each); anything else is stored as
#: "other" (and answered as unsupported). Events keep their name when it is one.
MESSAGE_TYPES = frozenset(
    {"text", "image", "voice", "video", "shortvideo", "location", "link", "file"}
)
EVENT_NAME = re.compile(r"[a-z0-9_]+")

_STATUS = {
    "answer": MessageStatus.RECEIVED,
    "reply": MessageStatus.ANSWERED,
    "handoff": MessageStatus.HANDOFF,
}
#: What a message that needs no answer from the knowledge got (the stored outcome).
_OUTCOME = {"reply": AnswerOutcome.REPLIED, "handoff": AnswerOutcome.HANDED_OFF}


@dataclass(frozen=True)
class Intake:
    """What became of a message: the decision to act on, and the stored row's id."""

    decision: Decision
    message_id: int | None  # None: a retry of a message stored before
    refused: str = ""  # "rate_limited" or "busy" when admission turned the question away

    @property
    def outcome(self) -> str:
        """The label the callback counts the message under (metrics)."""
        if self.message_id is None:
            return "duplicate"
        if self.refused:
            return self.refused
        return "queued" if self.decision.action == "answer" else self.decision.action


class Unanswerable(Exception):
    """A signed message that cannot come from any customer (an id longer than the platforms
    issue, or of characters none of their ids has): acknowledged, so the platform does not
    retry it, and neither stored nor answered."""


def _length(column: str) -> int:
    return InboundMessage.__table__.c[column].type.length


def missing_fields(fields: dict[str, str]) -> list[str]:
    return [f for f in REQUIRED_FIELDS if not fields.get(f)]


def accepted_fields(fields: dict[str, str]) -> dict[str, str]:
    """The callback's fields, checked against the store before anything is written.

    A missing required field is a 400. Sender and account ids longer than their columns
    (OpenIDs have 28 characters, WeCom UserIDs at most 64), or with characters outside
    PLATFORM_ID (markup, spaces, emoji), are no customer's: Unanswerable.
    A MediaId too long to be WeChat's is dropped, so the picture is asked about in words.
    Type, event and MsgId of any length are taken (incoming_from shortens them), so every
    documented event, and any event WeChat adds later, is acknowledged and never a 5xx."""
    missing = missing_fields(fields)
    if missing:
        raise CallbackRejected(400, f"missing fields: {', '.join(missing)}")
    for name, column in (("FromUserName", "customer"), ("ToUserName", "account")):
        if len(fields[name]) > _length(column):
            raise Unanswerable(f"{name} is longer than {_length(column)} characters")
        if not PLATFORM_ID.fullmatch(fields[name]):
            raise Unanswerable(f"{name} has characters no WeChat or WeCom id has")
    if len(fields.get("MediaId", "")) > _length("media_id"):
        return {k: v for k, v in fields.items() if k != "MediaId"}
    return fields


def stored_type(fields: dict[str, str]) -> str:
    """The type a message is stored under: its MsgType when the platforms send that type,
    ``event:<name>`` for an event (cut to the column: ``event:qualification_verify_success``
    has 34 characters; the type only labels rows, events are not answered), else
    ``other`` / ``event:other``: a signed body can carry any text there, and a label of
    markup or control characters is no type."""
    msg_type = fields["MsgType"].lower()
    if msg_type == "event":
        event = fields.get("Event", "").lower()
        stored = f"event:{event if EVENT_NAME.fullmatch(event) else 'other'}"
        return stored[: _length("msg_type")]
    if msg_type in MESSAGE_TYPES:
        return msg_type
    log.info("a message of unknown type %r is stored as 'other'", msg_type[:64])
    return "other"


def _read_by_worker(msg_type: str, decision: Decision) -> bool:
    """A picture, or a voice message WeChat did not recognise: the worker downloads it."""
    return msg_type == "image" or (
        msg_type == "voice" and decision.action == "answer" and not decision.text
    )


def incoming_from(channel: str, fields: dict[str, str], decision: Decision) -> IncomingMessage:
    """The message as stored, from a channel's accepted fields (``accepted_fields``).

    The type is ``stored_type``'s; a dedup key longer than its column keeps its start and
    a hash of the whole, so retries still match."""
    msg_type = stored_type(fields)
    read = _read_by_worker(msg_type, decision)
    event = fields.get("Event", "").lower()
    # Events carry no MsgId: WeChat's retries of one repeat sender and CreateTime.
    dedup_key = fields.get("MsgId") or f"{fields['FromUserName']}:{fields['CreateTime']}:{event}"
    return IncomingMessage(
        channel=channel,
        dedup_key=fit(dedup_key, _length("dedup_key")),
        account=fields["ToUserName"],
        customer=fields["FromUserName"],
        msg_type=msg_type,
        content=decision.text if decision.action in ("answer", "handoff") else "",
        media_id=fields.get("MediaId", "") if read else "",
        media_format=fields.get("Format", "")[:16].lower() if read and msg_type == "voice" else "",
    )


def take_in(
    channel: str,
    fields: dict[str, str],
    settings: Settings,
    *,
    instant: bool = False,
    delivery: str = "custom",
) -> Intake:
    """Stores the message once and queues its answer when it needs one and is admitted.

    With ``instant``, a question that is an FAQ entry's (app/pipeline/instant.py) is
    answered here: stored answered, and the decision becomes that reply (for the channel's
    passive reply); a retry of it gets the same reply again (the first may be lost)."""
    decision = route(fields, settings)
    incoming = incoming_from(channel, fields, decision)
    found = None
    if instant and decision.action == "answer" and decision.text:
        found = instant_faq.lookup(decision.text, settings)
    record: dict[str, Any] = {"delivery": delivery}
    if found is not None:
        record = {
            "answer": found.text,
            "sources": found.sources,
            "answer_sent": True,
            "outcome": AnswerOutcome.FAQ,
            "outcome_detail": json.dumps(found.detail, ensure_ascii=False),
        }
    taken = admit_and_record(incoming, decision, settings, **record)
    if taken.message_id is None and found is not None:
        row = inbound.find(incoming.channel, incoming.dedup_key)
        stored = row.passive_reply if row is not None else ""
        inbound.done_reading()
        return replace(taken, decision=Decision("reply", stored)) if stored else taken
    if taken.message_id is None or taken.refused:
        return taken
    if found is not None:
        ANSWER_OUTCOMES.labels(outcome=AnswerOutcome.FAQ, via=f"web:{found.detail['via']}").inc()
        customer = f"{incoming.channel}:{incoming.customer}"
        instant_faq.remember(customer, decision.text, found.text, settings)
        return replace(taken, decision=Decision("reply", found.text))
    if decision.action == "answer":
        inbound.enqueue_answer(taken.message_id)
    return taken


def _record_handoff(incoming: IncomingMessage) -> None:
    """A customer who asked for a person is in the staff's hand-off inbox (app/
    conversations/handoffs.py); 微信客服 records its own, with the session's hand-over. The
    message is stored and answered either way: a failure here is logged, not raised."""
    from app.conversations import handoffs
    from app.extensions import db

    if incoming.channel not in handoffs.RECORDED_AT_INTAKE:
        return
    try:
        handoffs.record(
            incoming.channel,
            incoming.customer,
            incoming.account,
            handoffs.ASKED_FOR_PERSON,
            incoming.content,
        )
    except Exception as exc:  # noqa: BLE001 - the customer's reply must still go out
        db.session.rollback()
        log.warning("hand-off of %s not recorded for the staff: %s", incoming.customer, exc)


def admit_and_record(
    incoming: IncomingMessage, decision: Decision, settings: Settings, **record: Any
) -> Intake:
    """Stores the message once; a question is also judged by the rate limit and flood
    protection in the same transaction (``record``: extra arguments of inbound.record)."""
    status = _STATUS.get(decision.action, MessageStatus.IGNORED)
    if decision.action != "answer":
        if decision.action in _OUTCOME and not record.get("outcome"):
            # The WeChat callback passes outcome="" (no instant answer) for every message.
            record["outcome"] = _OUTCOME[decision.action]
        message_id = inbound.record(incoming, status=status, **record)
        if message_id is not None and decision.action == "handoff":
            _record_handoff(incoming)
        return Intake(decision, message_id)

    busy = admission.backlog_full(settings)
    verdicts: list[admission.Verdict] = []

    def admit(row: InboundMessage) -> None:
        verdict = admission.admit(incoming.channel, incoming.customer, settings, busy=busy)
        verdicts.append(verdict)
        if not verdict.admitted:
            row.status, row.error, row.passive_reply = MessageStatus.IGNORED, verdict.reason, ""
            row.outcome, row.outcome_detail = verdict.kind, ""

    message_id = inbound.record(incoming, status=status, before_commit=admit, **record)
    if message_id is None:
        return Intake(decision, None)
    verdict = verdicts[-1]
    if not verdict.admitted:
        polite = Decision("reply", verdict.reply) if verdict.reply else Decision("ignore")
        return Intake(polite, message_id, refused=verdict.kind)
    return Intake(decision, message_id)
