"""Whether a new question goes to the model: per-customer rate limit and flood protection.

Decided while the message is being stored, so that nothing is lost: a refused message is
still recorded (status ``ignored``, the reason in ``error``) and WeChat's retries of it
stay duplicates. Messages already accepted are never shed; under a flood only new ones
are turned away, politely.

- Rate limit: more than RATE_LIMIT_MESSAGES questions from one customer in a
  RATE_LIMIT_WINDOW_S window. The first message over the limit gets RATE_LIMIT_REPLY;
  later ones in the same window get nothing, so a customer who keeps sending is told once.
- Flood: FLOOD_MAX_BACKLOG questions of all customers still unanswered (received or
  being answered). Each new question gets FLOOD_REPLY until the backlog drains.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import func, select

from app import resources
from app.extensions import db
from app.settings import Settings
from app.store import UNANSWERED, InboundMessage


@dataclass(frozen=True)
class Verdict:
    admitted: bool
    reason: str = ""  # stored on the refused message
    reply: str = ""  # what the customer is told now ("" = nothing)

    @property
    def kind(self) -> str:
        """``rate_limited`` or ``busy`` for a refusal (the metrics label), else ``""``."""
        return self.reason.split(":", 1)[0]


ADMITTED = Verdict(True)


#: Far below the cap, a count this young stands in for a new one (per process).
RECOUNT_S = 1.0


@dataclass
class _Estimate:
    count: int = 0  # unanswered questions at the last count, plus those admitted since
    at: float = float("-inf")  # time.monotonic() of the last count


_estimates: dict[str, _Estimate] = {}
_lock = threading.Lock()


def backlog_full(settings: Settings) -> bool:
    """True when FLOOD_MAX_BACKLOG questions are waiting; reads at most that many rows.

    The count is a query on the callback's hot path: while this process's estimate
    (its last count plus the questions it admitted since) is under half the cap and
    under a second old, no query is made. Near the cap every question counts afresh."""
    cap = settings.flood_max_backlog
    if not cap:
        return False
    now = time.monotonic()
    with _lock:
        estimate = _estimates.setdefault(settings.database_url, _Estimate())
        if now - estimate.at < RECOUNT_S and estimate.count < cap // 2:
            return False
    waiting = select(InboundMessage.id).where(InboundMessage.status.in_(UNANSWERED)).limit(cap)
    count = db.session.scalar(select(func.count()).select_from(waiting.subquery())) or 0
    with _lock:
        estimate.count, estimate.at = count, now
    return count >= cap


def _admitted(settings: Settings) -> Verdict:
    with _lock:
        if settings.database_url in _estimates:
            _estimates[settings.database_url].count += 1
    return ADMITTED


def admit(channel: str, customer: str, settings: Settings, *, busy: bool) -> Verdict:
    """Counts a new question of `customer` and says whether the model may take it.

    `busy` is backlog_full(), read before the message was stored (so it is not counted
    in its own backlog); the count is taken only for messages that are really new."""
    limit = settings.rate_limit_messages
    if limit:
        window = settings.rate_limit_window_s
        count = resources.rate_counter(settings).hit(f"{channel}:{customer}", window)
        if count > limit:
            return Verdict(
                False,
                f"rate_limited: message {count} within {window}s (limit {limit})",
                settings.rate_limit_reply if count == limit + 1 else "",
            )
    if busy:
        return Verdict(
            False,
            f"busy: {settings.flood_max_backlog} questions waiting (FLOOD_MAX_BACKLOG)",
            settings.flood_reply,
        )
    return _admitted(settings)
