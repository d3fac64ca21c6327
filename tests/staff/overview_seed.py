"""Messages across days and outcomes, with replies sent after known waits, and the figures
/api/overview must report for them, worked out by hand (the API and browser tests of the
overview share them)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.extensions import db
from app.store import InboundMessage, OutboundReply

HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'

# (days before today, outcome, seconds to each sent reply; None: a reply not sent)
MESSAGES: list[tuple[int, str, list[float | None]]] = [
    (1, "faq", [1]),
    (1, "faq", [2]),
    (1, "generated", [3, 7]),  # pieces: the first one sent counts
    (1, "generated", [4]),
    (1, "refused", [10]),
    (1, "handed_off", []),
    (1, "", [None]),  # still being answered: pending, its reply not sent
    (1, "failed", []),
    (2, "generated", [20]),
    (2, "rate_limited", []),
    (6, "faq", [0.5]),
    (7, "refused", [60]),  # in the last 30 days, not the last 7
    (10, "generated", [30]),
    (29, "handed_off", [40]),  # the first day of the last 30
    (30, "faq", [1000]),  # one day before the last 30: nowhere
]

# Day 1's waits 1, 2, 3, 4, 10: position 0.95 x 4 = 3.8, 4 + 0.8 x (10 - 4) = 8.8 s.
# The last 7 days' waits 0.5, 1, 2, 3, 4, 10, 20: 0.95 x 6 = 5.7, 10 + 0.7 x 10 = 17 s.
# The last 30 days' waits add 30, 40, 60: 0.95 x 9 = 8.55, 40 + 0.55 x 20 = 51 s.
EXPECTED_TOTALS = {
    7: {
        "messages": 11,
        "faq": 3,
        "generated": 3,
        "refused": 1,
        "handed_off": 1,
        "failed": 1,
        "reply_sent": 7,
        "p95_reply_ms": 17_000,
    },
    30: {
        "messages": 14,
        "faq": 3,
        "generated": 4,
        "refused": 2,
        "handed_off": 2,
        "failed": 1,
        "reply_sent": 10,
        "p95_reply_ms": 51_000,
    },
}
EXPECTED_DAY_1 = {
    "messages": 8,
    "faq": 2,
    "generated": 2,
    "refused": 1,
    "handed_off": 1,
    "failed": 1,
    "reply_sent": 5,
    "p95_reply_ms": 8_800,
}


#: The app's BUSINESS_TIMEZONE (its default): the days the overview counts in.
ZONE = ZoneInfo("Asia/Shanghai")


def day(before: int, now: datetime | None = None) -> datetime:
    """Noon of the business's day ``before`` days before its today."""
    today = (now or datetime.now(UTC)).astimezone(ZONE).date()
    return datetime.combine(today - timedelta(days=before), time(12), ZONE)


def seed(now: datetime | None = None) -> None:
    """The messages above (in the current app's database)."""
    for before, outcome, waits in MESSAGES:
        created = day(before, now)
        msg = InboundMessage(
            channel="wechat",
            dedup_key=uuid.uuid4().hex,
            customer=f"o{uuid.uuid4().hex[:12]}",
            msg_type="text",
            content=HOSTILE,
            status="answered" if outcome else "processing",
            outcome=outcome,
            created_at=created,
        )
        db.session.add(msg)
        db.session.flush()
        for seq, wait in enumerate(waits):
            db.session.add(
                OutboundReply(
                    inbound_id=msg.id,
                    seq=seq,
                    content=HOSTILE,
                    status="sent" if wait is not None else "pending",
                    created_at=created,
                    sent_at=created + timedelta(seconds=wait) if wait is not None else None,
                )
            )
    db.session.commit()
