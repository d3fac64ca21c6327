"""The hand-off inbox: customers handed to a person, and the staff who work them.

A request (``HandoffRequest``) comes from a customer who asked for a person on the Official
Account or WeCom (``record``, called at intake: app/messages/intake.py), from a 微信客服
session handed to people (app/channels/kf/handoff.py records its own, with the session's
hand-over), or from the hand-off tool a Dify workflow calls (source "dify"). One request
stays open per customer and conversation until staff close it, so a customer who writes
"人工" three times is one request.

States: open → taken (by whom, when) → closed (by whom, when); an open one may be closed
at once. Each change is one conditional UPDATE, so two people taking the same request at
the same moment get one success and one 409 naming who has it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update

from app.accounts import audit
from app.conversations import logs
from app.errors import Conflict, NotFound
from app.extensions import db
from app.pipeline.privacy import mask_pii
from app.store import HandoffRequest, HandoffStatus, InboundMessage

STATES = tuple(str(s) for s in HandoffStatus)
#: What the inbox shows unless told: the requests someone still has to deal with.
ACTIVE = (HandoffStatus.OPEN, HandoffStatus.TAKEN)
#: The channels whose hand-offs intake records (微信客服 records its own).
RECORDED_AT_INTAKE = ("wechat", "wecom")
#: The customer's recent messages shown with a request.
THREAD = 10
ASKED_FOR_PERSON = "customer asked for a person"


def record(source: str, customer: str, conversation: str, reason: str, summary: str) -> int:
    """The request of a customer handed to a person (committed); the one still open or
    taken for this customer and conversation when there is one."""
    found = db.session.scalar(
        select(HandoffRequest.id).where(
            HandoffRequest.source == source,
            HandoffRequest.customer == customer,
            HandoffRequest.conversation_id == conversation,
            HandoffRequest.status.in_([str(s) for s in ACTIVE]),
        )
    )
    if found is not None:
        db.session.commit()
        return found
    row = HandoffRequest(
        source=source,
        customer=customer[:128],
        conversation_id=conversation[:128],
        reason=reason,
        summary=mask_pii(summary)[:2000],  # no phone, card or ID numbers at rest
    )
    db.session.add(row)
    db.session.commit()
    return row.id


def counts() -> dict[str, int]:
    """Requests by state (every state named, 0 where none)."""
    rows = db.session.execute(
        select(HandoffRequest.status, func.count()).group_by(HandoffRequest.status)
    )
    out = dict.fromkeys(STATES, 0)
    out.update({status: n for status, n in rows})
    return out


def listing(
    states: tuple[str, ...], source: str | None, limit: int, before: int | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """Requests in ``states``, newest first, each with the customer's recent thread; and
    the id to continue before (None: no more)."""
    query = select(HandoffRequest).where(HandoffRequest.status.in_(states))
    if source:
        query = query.where(HandoffRequest.source == source)
    if before is not None:
        query = query.where(HandoffRequest.id < before)
    rows = db.session.scalars(query.order_by(HandoffRequest.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [as_dict(r, thread(r)) for r in rows], (rows[-1].id if more and rows else None)


def get(request_id: int) -> HandoffRequest:
    row = db.session.get(HandoffRequest, request_id)
    if row is None:
        raise NotFound(f"no hand-off request {request_id}")
    return row


def thread(row: HandoffRequest, limit: int = THREAD) -> list[dict[str, Any]]:
    """The customer's last messages and their replies, oldest first: of the request's
    channel, or of any channel for a request from the hand-off tool."""
    if not row.customer:
        return []
    query = select(InboundMessage).where(InboundMessage.customer == row.customer)
    if row.source != "dify":
        query = query.where(InboundMessage.channel == row.source)
    messages = db.session.scalars(
        query.order_by(InboundMessage.created_at.desc(), InboundMessage.id.desc()).limit(limit)
    ).all()
    shown = logs.rows_of(list(reversed(messages)))
    keep = ("id", "channel", "created_at", "question", "reply", "outcome")
    return [{k: m[k] for k in keep} for m in shown]


def take(request_id: int, who: str) -> HandoffRequest:
    """``who`` takes an open request; 409 when someone took or closed it first."""
    now = datetime.now(UTC)
    _change(
        request_id,
        (HandoffStatus.OPEN,),
        status=HandoffStatus.TAKEN,
        taken_by=who[:64],
        taken_at=now,
    )
    audit.record(who, "handoff.take", f"handoff:{request_id}")
    db.session.commit()
    return get(request_id)


def close(request_id: int, who: str) -> HandoffRequest:
    """``who`` closes an open or taken request (whoever took it); 409 when it is closed."""
    now = datetime.now(UTC)
    _change(request_id, ACTIVE, status=HandoffStatus.CLOSED, closed_by=who[:64], closed_at=now)
    audit.record(who, "handoff.close", f"handoff:{request_id}")
    db.session.commit()
    return get(request_id)


def _change(request_id: int, allowed: tuple[str, ...], **values: Any) -> None:
    done = db.session.execute(
        update(HandoffRequest)
        .where(HandoffRequest.id == request_id, HandoffRequest.status.in_(allowed))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount == 1:
        return
    db.session.rollback()
    row = get(request_id)  # 404 when there is none
    if row.status == HandoffStatus.TAKEN:
        raise Conflict(f"hand-off {request_id} was taken by {row.taken_by} already")
    raise Conflict(f"hand-off {request_id} is {row.status} already")


def as_dict(row: HandoffRequest, thread: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    def at(value: datetime | None) -> str | None:
        if value is None:
            return None
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()

    return {
        "id": row.id,
        "source": row.source,
        "customer": row.customer,
        "conversation_id": row.conversation_id,
        "reason": mask_pii(row.reason or ""),
        "summary": mask_pii(row.summary or ""),
        "status": row.status,
        "created_at": at(row.created_at),
        "taken_by": row.taken_by,
        "taken_at": at(row.taken_at),
        "closed_by": row.closed_by,
        "closed_at": at(row.closed_at),
        "thread": thread if thread is not None else [],
    }
