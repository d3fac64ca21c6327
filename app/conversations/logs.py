"""The conversation log for staff: every customer message and the reply it got, newest
first, filtered by channel, outcome, period, text and customer (one customer's thread).

Pages are read by keyset (the last row's time and id, ``Cursor``), so the hundredth page
costs what the first does: the list reads ``limit + 1`` rows down an index
(``ix_inbound_created``, ``ix_inbound_outcome_created`` or ``ix_inbound_customer_created``,
migration 0015) and the replies of those rows in one more query. A text search finds its
messages by index first (``_containing``: migration 0017's ``search_bigrams``, PostgreSQL).

What staff see is masked: customers' text and answers are stored masked (app/messages/
inbound.py, the pipeline), and are masked again here with every string of the answer's
record (``outcome_detail``), so a number stored before masking existed, or by another
answerer, is not shown either. A mobile or landline number of the business's own that an
answer quoted from the knowledge is masked in this view too (the customer got it whole).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, union
from sqlalchemy.orm import aliased

from app.errors import BadRequest
from app.extensions import db
from app.pipeline.privacy import mask_pii
from app.store import AnswerOutcome, InboundMessage, OutboundReply

#: The outcomes staff filter by; "pending": not answered yet (stored outcome "").
OUTCOMES = (*(str(o) for o in AnswerOutcome), "pending")
MAX_LIMIT = 200
MAX_TEXT = 200
#: Strings of an answer's record are cut to this many characters in the list.
MAX_DETAIL_CHARS = 1000
_CHANNEL = re.compile(r"[a-z][a-z0-9_]{0,15}")
_CURSOR = re.compile(r"(\d{1,20})\.(\d{1,12})")


@dataclass(frozen=True)
class Filters:
    channel: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    customer: str | None = None


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the last row's time (microseconds since the epoch) and id."""

    at_us: int
    id: int

    def __str__(self) -> str:
        return f"{self.at_us}.{self.id}"

    @classmethod
    def parse(cls, raw: str) -> Cursor:
        m = _CURSOR.fullmatch(raw)
        if m is None:
            raise BadRequest("cursor is not one this API returned (next_cursor)")
        return cls(int(m.group(1)), int(m.group(2)))

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.at_us / 1_000_000, UTC)


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _micros(value: datetime) -> int:
    value = _as_utc(value)
    return (
        int((value - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000
        + value.microsecond
    )


def _moment(name: str, raw: str) -> datetime:
    """An ISO 8601 date or time; without an offset it is UTC (the pages send offsets)."""
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date or time, e.g. 2026-12-07") from None
    return _as_utc(value)


def filters_from(args: Mapping[str, str]) -> Filters:
    """The filters of a request's query string; a bad one is a 400 naming it."""

    def arg(name: str) -> str | None:
        value = (args.get(name) or "").strip()
        return value or None

    channel, outcome, text, customer = arg("channel"), arg("outcome"), arg("q"), arg("customer")
    if channel is not None and not _CHANNEL.fullmatch(channel):
        raise BadRequest("channel must be a channel's name, e.g. wechat, wecom or kf")
    if outcome is not None and outcome not in OUTCOMES:
        raise BadRequest(f"outcome must be one of {', '.join(OUTCOMES)}")
    if text is not None and len(text) > MAX_TEXT:
        raise BadRequest(f"q is longer than {MAX_TEXT} characters")
    if customer is not None and len(customer) > 128:
        raise BadRequest("customer is longer than 128 characters")
    since = _moment("since", args["since"]) if arg("since") else None
    until = _moment("until", args["until"]) if arg("until") else None
    if since is not None and until is not None and since > until:
        raise BadRequest("since is after until")
    return Filters(channel, outcome, since, until, text, customer)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _conditions(f: Filters) -> list[Any]:
    m = InboundMessage
    where: list[Any] = []
    if f.channel:
        where.append(m.channel == f.channel)
    if f.outcome:
        where.append(m.outcome == ("" if f.outcome == "pending" else f.outcome))
    if f.customer:
        where.append(m.customer == f.customer)
    if f.since:
        where.append(m.created_at >= f.since)
    if f.until:
        where.append(m.created_at < f.until)
    if f.text:
        # The question, or any reply to it (masked numbers are not searchable by digits).
        where.append(m.id.in_(_containing(f.text)))
    return where


def _containing(text: str) -> Any:
    """The ids of the messages whose question or a reply contains ``text``, any case.

    One query per table, joined by UNION: with ``question OR id IN (replies)`` PostgreSQL
    scanned every message whatever the indexes. On PostgreSQL each side is found by the
    ``search_bigrams`` GIN index (migration 0017_staff_search): every two-character piece
    of ``text`` is in the row's, then ILIKE keeps the rows that have ``text`` itself. One
    character has no piece: scanned, as on SQLite."""
    pattern = _like(text)
    asked = aliased(InboundMessage)
    question = select(asked.id).where(asked.content.ilike(pattern, escape="\\"))
    reply = select(OutboundReply.inbound_id).where(
        OutboundReply.content.ilike(pattern, escape="\\")
    )
    if len(text) >= 2 and db.session.get_bind().dialect.name == "postgresql":
        pieces = func.search_bigrams(text)
        question = question.where(func.search_bigrams(asked.content).op("@>")(pieces))
        reply = reply.where(func.search_bigrams(OutboundReply.content).op("@>")(pieces))
    return union(question, reply)


def _after(cursor: Cursor) -> Any:
    at = cursor.at
    m = InboundMessage
    # The first term lets the time index bound the scan; the second breaks ties by id.
    return and_(m.created_at <= at, or_(m.created_at < at, m.id < cursor.id))


@dataclass
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None


def page(f: Filters, limit: int = 50, cursor: Cursor | None = None) -> Page:
    """One page of the log, newest first."""
    where = _conditions(f)
    if cursor is not None:
        where.append(_after(cursor))
    messages = db.session.scalars(
        select(InboundMessage)
        .where(*where)
        .order_by(InboundMessage.created_at.desc(), InboundMessage.id.desc())
        .limit(limit + 1)
    ).all()
    more = len(messages) > limit
    messages = messages[:limit]
    rows = rows_of(messages)
    last = messages[-1] if more and messages else None
    next_cursor = str(Cursor(_micros(last.created_at), last.id)) if last is not None else None
    return Page(rows, next_cursor)


def count(f: Filters) -> int:
    return db.session.scalar(
        select(func.count()).select_from(InboundMessage).where(*_conditions(f))
    )


def get(message_id: int) -> dict[str, Any] | None:
    msg = db.session.get(InboundMessage, message_id)
    return rows_of([msg], full=True)[0] if msg is not None else None


def each(f: Filters, limit: int, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Every row of the filtered log, newest first, at most ``limit`` (the exports)."""
    cursor, left = None, limit
    while left > 0:
        got = page(f, min(batch, left), cursor)
        yield from got.rows
        left -= len(got.rows)
        if got.next_cursor is None:
            return
        cursor = Cursor.parse(got.next_cursor)


def rows_of(messages: Sequence[InboundMessage], full: bool = False) -> list[dict[str, Any]]:
    """The messages as the log shows them (their replies read in one query); ``full``: the
    answer's record uncut."""
    ids = [m.id for m in messages]
    replies: dict[int, list[OutboundReply]] = {i: [] for i in ids}
    if ids:
        for r in db.session.scalars(
            select(OutboundReply)
            .where(OutboundReply.inbound_id.in_(ids))
            .order_by(OutboundReply.inbound_id, OutboundReply.seq)
        ):
            replies[r.inbound_id].append(r)
    return [_row(m, replies[m.id], full) for m in messages]


def _row(m: InboundMessage, replies: list[OutboundReply], full: bool) -> dict[str, Any]:
    detail = _loads(m.outcome_detail, {})
    sent = [_as_utc(r.sent_at) for r in replies if r.sent_at is not None]
    created = _as_utc(m.created_at)
    sources = _loads(replies[0].sources, []) if replies else []
    limit = None if full else MAX_DETAIL_CHARS
    return {
        "id": m.id,
        "channel": m.channel,
        "customer": m.customer,
        "account": m.account,
        "type": m.msg_type,
        "question": mask_pii(m.content or ""),
        "status": m.status,
        "outcome": m.outcome or "pending",
        "created_at": created.isoformat(),
        "delivery": m.delivery,
        "reply": mask_pii("".join(r.content for r in replies)),
        "replies": [
            {
                "text": mask_pii(r.content),
                "status": r.status,
                "via": r.via,
                "sent_at": _as_utc(r.sent_at).isoformat() if r.sent_at else None,
            }
            for r in replies
        ],
        "reply_ms": round((min(sent) - created).total_seconds() * 1000) if sent else None,
        "sources": _masked(sources if isinstance(sources, list) else [], limit),
        "detail": _masked(detail if isinstance(detail, dict) else {}, limit),
        "error": mask_pii((m.error or "")[:500]),
    }


def _loads(raw: str | None, default: Any) -> Any:
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return default


def _masked(value: Any, limit: int | None, depth: int = 0) -> Any:
    """``value`` with every string masked (and cut to ``limit``), at most 6 levels deep."""
    if isinstance(value, str):
        return mask_pii(value if limit is None else value[:limit])
    if depth >= 6:
        return None
    if isinstance(value, dict):
        return {str(k): _masked(v, limit, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, limit, depth + 1) for v in value[:50]]
    return value
