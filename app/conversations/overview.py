"""The overview for business staff: per day of the last 7 or 30 days, how many customer
messages came in, what became of them (answered verbatim from an FAQ entry, by the model,
refused, handed to a person, failed) and how long the 95th-percentile customer waited
from the message's arrival to the first piece of its reply going out; the period's totals
beside the days. /admin/overview draws it, /api/overview returns it, /metrics exports the
totals (app/metrics.py).

Counted in the database, not here: one GROUP BY over the period's messages, joined to
the first ``sent_at`` of each message's replies; GROUPING SETS give the days and the whole
period in the same pass, since a period's p95 is not any mix of its days' p95s. The
replies read are those from the period's smallest message id on: exact (no message of the
period has a smaller id) and, as ids grow with arrival, about the period's own replies
however long the history (an index range on ``outbound_replies.inbound_id``). A hash join
of those replies took 120 ms where a lookup per message took 180 ms; 30 days holding
100,000 messages, on two shared cores, JIT off (README, "Overview").

"Messages" are every logged message, as the conversation log lists them (events and
pictures too); a message still being answered has no outcome yet (``pending``). The
reply time is counted for messages whose reply went out (``sent_at``), whichever the
outcome, exactly as the log's ``reply_ms``. p95: PostgreSQL's ``percentile_cont(0.95)``,
the linear interpolation between the two nearest samples.

Days are the business's days (BUSINESS_TIMEZONE, Beijing time unless set): a day cut at
UTC midnight would end at 08:00 in China. The period ends now and starts at midnight of
the first of its days, so today counts as far as it has come.
SQLite (a single box) has no percentile or GROUPING SETS: there the period's rows are read
and counted here, the same way (``_counted_here``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from math import floor
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text

from app.errors import BadRequest
from app.extensions import db
from app.store import AnswerOutcome, InboundMessage, OutboundReply

#: The periods offered (days, today included).
PERIODS = (7, 30)
#: The time zone days are counted in where the caller names none (BUSINESS_TIMEZONE's
#: default).
TIMEZONE = "Asia/Shanghai"
#: What staff read first, in this order; the others (fixed replies, rate-limited, busy,
#: pending) are in ``outcomes`` too.
SHOWN = ("faq", "generated", "refused", "handed_off", "failed")
OUTCOMES = (*(str(o) for o in AnswerOutcome), "pending")

# Every outcome as a FILTER column; the names are the enum's own values, not input.
_COUNTS = ",\n       ".join(
    f"count(*) FILTER (WHERE m.outcome = '{'' if o == 'pending' else o}') AS \"{o}\""
    for o in OUTCOMES
)
#: The aggregation (PostgreSQL). ``is_total`` 1 marks the period's row.
SQL = f"""
SELECT (m.created_at AT TIME ZONE :tz)::date AS day,
       GROUPING((m.created_at AT TIME ZONE :tz)::date) AS is_total,
       count(*) AS messages,
       {_COUNTS},
       count(r.first_sent) AS reply_sent,
       percentile_cont(0.95) WITHIN GROUP (
           ORDER BY extract(epoch FROM r.first_sent - m.created_at)) AS p95_s
FROM inbound_messages m
LEFT JOIN (
    SELECT o.inbound_id, min(o.sent_at) AS first_sent
    FROM outbound_replies o
    WHERE o.inbound_id >= (SELECT min(id) FROM inbound_messages
                           WHERE created_at >= :since AND created_at < :until)
    GROUP BY o.inbound_id
) r ON r.inbound_id = m.id
WHERE m.created_at >= :since AND m.created_at < :until
GROUP BY GROUPING SETS (((m.created_at AT TIME ZONE :tz)::date), ())
"""


@dataclass
class Figures:
    """One day's, or the period's, counts."""

    messages: int = 0
    outcomes: dict[str, int] | None = None
    #: Messages whose reply went out: the p95's sample.
    reply_sent: int = 0
    p95_ms: int | None = None

    def as_dict(self) -> dict[str, Any]:
        outcomes = self.outcomes or dict.fromkeys(OUTCOMES, 0)
        return {
            "messages": self.messages,
            **{name: outcomes[name] for name in SHOWN},
            "outcomes": outcomes,
            "reply_sent": self.reply_sent,
            "p95_reply_ms": self.p95_ms,
        }


def period_of(raw: str | None) -> int:
    """``days`` of a request: 7 (the default) or 30; anything else is a 400."""
    value = (raw or "7").strip()
    if value not in {str(p) for p in PERIODS}:
        raise BadRequest(f"days must be one of {', '.join(str(p) for p in PERIODS)}")
    return int(value)


def window(days: int, now: datetime, tz: str = TIMEZONE) -> tuple[list[date], datetime]:
    """The period's days (oldest first) and the moment it starts (UTC)."""
    local = now.astimezone(ZoneInfo(tz))
    first = local.date() - timedelta(days=days - 1)
    start = datetime.combine(first, time(), ZoneInfo(tz)).astimezone(UTC)
    return [first + timedelta(days=i) for i in range(days)], start


def summary(days: int, now: datetime | None = None, tz: str = TIMEZONE) -> dict[str, Any]:
    """The period's days and totals, ready for JSON (every day listed, empty ones as 0)."""
    now = now or datetime.now(UTC)
    day_list, since = window(days, now, tz)
    if db.engine.dialect.name == "postgresql":
        per_day, total = _counted_in_sql(since, now, tz)
    else:
        per_day, total = _counted_here(since, now, tz)
    return {
        "days": days,
        "timezone": tz,
        "since": since.isoformat(),
        "until": now.astimezone(UTC).isoformat(),
        "totals": total.as_dict(),
        "per_day": [
            {"day": d.isoformat(), **per_day.get(d, Figures()).as_dict()} for d in day_list
        ],
    }


def _figures(row: Any) -> Figures:
    p95 = row.p95_s
    return Figures(
        messages=row.messages,
        outcomes={o: getattr(row, o) for o in OUTCOMES},
        reply_sent=row.reply_sent,
        p95_ms=None if p95 is None else round(float(p95) * 1000),
    )


def _counted_in_sql(
    since: datetime, until: datetime, tz: str
) -> tuple[dict[date, Figures], Figures]:
    per_day: dict[date, Figures] = {}
    total = Figures()
    # At 100,000 messages the plan's cost starts the JIT compiler, which spent longer
    # compiling than the query ran (200 ms of 370 ms). Off for this transaction only.
    db.session.execute(text("SELECT set_config('jit', 'off', true)"))
    for row in db.session.execute(text(SQL), {"tz": tz, "since": since, "until": until}):
        if row.is_total:
            total = _figures(row)
        else:
            per_day[row.day] = _figures(row)
    return per_day, total


def percentile(values: Sequence[float], q: float = 0.95) -> float | None:
    """``percentile_cont(q)``: linear interpolation between the nearest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _counted_here(since: datetime, until: datetime, tz: str) -> tuple[dict[date, Figures], Figures]:
    """The same figures where the database cannot count them (SQLite)."""
    first_sent = (
        select(func.min(OutboundReply.sent_at))
        .where(OutboundReply.inbound_id == InboundMessage.id)
        .scalar_subquery()
    )
    rows = db.session.execute(
        select(InboundMessage.created_at, InboundMessage.outcome, first_sent).where(
            InboundMessage.created_at >= since, InboundMessage.created_at < until
        )
    ).all()
    zone = ZoneInfo(tz)
    by_day: dict[date, list[tuple[str, float | None]]] = {}
    everything: list[tuple[str, float | None]] = []
    for created, outcome, sent in rows:
        created = _as_utc(created)
        wait = (_as_utc(sent) - created).total_seconds() if sent is not None else None
        item = (outcome or "pending", wait)
        by_day.setdefault(created.astimezone(zone).date(), []).append(item)
        everything.append(item)
    return {d: _tally(items) for d, items in by_day.items()}, _tally(everything)


def _tally(items: Iterable[tuple[str, float | None]]) -> Figures:
    items = list(items)
    outcomes = dict.fromkeys(OUTCOMES, 0)
    for outcome, _ in items:
        if outcome in outcomes:
            outcomes[outcome] += 1
    waits = [w for _, w in items if w is not None]
    p95 = percentile(waits)
    return Figures(
        messages=len(items),
        outcomes=outcomes,
        reply_sent=len(waits),
        p95_ms=None if p95 is None else round(p95 * 1000),
    )
