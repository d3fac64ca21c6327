"""The questions the bot could not answer, grouped by meaning, most frequent first.

A question is unanswered when its answer was the hand-off reply (outcome ``refused``: the
knowledge does not cover it) or the customer was handed to a person (``handed_off``).
Grouping: the same text (without punctuation or case) is one question; distinct texts are
embedded with the service's own embedder (the query cache serves repeats) and grouped by
complete linkage: every two questions of a group are within ``GROUP_COSINE`` of each other,
whatever order they came in (a running centre drifted: one group of 28 mixed checkout,
breakfast and shipping on bench/data/unanswered_groups.jsonl); a group is named by its
most asked wording. Splitting a true group in two costs staff one more click; mixing two
would file one customer's wording under another's answer. 0.90 keeps "可以用比特币支付吗" with
"你们支持比特币付款吗" (0.96) and apart from "支持数字货币付款吗"'s neighbours on other
topics (at most 0.88 with multilingual-e5).

Staff deal with a group on /admin/unanswered: its questions become an FAQ entry's
paraphrases, a new entry, or are dismissed (``resolve``); a question dealt with leaves the
list until it is refused again afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from sqlalchemy import select

from app.accounts import audit
from app.extensions import db
from app.faq.editing import key_of
from app.pipeline.privacy import mask_pii
from app.store import AnswerOutcome, InboundMessage, UnansweredResolution

GROUP_COSINE = 0.90
#: The messages of a period that are read at most (newest first): enough for any period a
#: person can work through, bounded for the page's response time.
MAX_MESSAGES = 5000
#: Distinct texts embedded at most (the most frequent).
MAX_DISTINCT = 1500
EXAMPLES = 5
UNANSWERED_OUTCOMES = (AnswerOutcome.REFUSED, AnswerOutcome.HANDED_OFF)

Embed = Callable[[list[str]], Sequence[Sequence[float]]]


@dataclass
class Question:
    """One distinct text: how often, by how many customers, when last."""

    text: str
    key: str
    count: int = 0
    customers: set[str] = field(default_factory=set)
    newest: datetime | None = None
    outcomes: dict[str, int] = field(default_factory=dict)


@dataclass
class Group:
    questions: list[Question]
    centre: np.ndarray

    @property
    def count(self) -> int:
        return sum(q.count for q in self.questions)

    @property
    def newest(self) -> datetime:
        return max(q.newest for q in self.questions if q.newest is not None)


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def shown_text(content: str | None) -> str:
    """A stored message as the grouping shows and embeds it (masked, at most 500
    characters): the text the answer pipeline searched with, for a question up to that."""
    return mask_pii((content or "").strip())[:500]


def collect(days: float, now: datetime | None = None) -> list[Question]:
    """The period's unanswered questions that staff have not dealt with, by text."""
    since = (now or datetime.now(UTC)) - timedelta(days=days)
    rows = db.session.execute(
        select(
            InboundMessage.content,
            InboundMessage.customer,
            InboundMessage.created_at,
            InboundMessage.outcome,
        )
        .where(
            InboundMessage.outcome.in_([str(o) for o in UNANSWERED_OUTCOMES]),
            InboundMessage.created_at >= since,
        )
        .order_by(InboundMessage.created_at.desc())
        .limit(MAX_MESSAGES)
    ).all()
    by_key: dict[str, Question] = {}
    # The same words come back many times: masked and normalised once each.
    seen: dict[str | None, tuple[str, str]] = {}
    for content, customer, created_at, outcome in rows:
        known = seen.get(content)
        if known is None:
            text = shown_text(content)
            known = seen[content] = (text, key_of(text))
        text, key = known
        if not key:
            continue
        q = by_key.get(key)
        if q is None:
            q = by_key[key] = Question(text=text, key=key)
        q.count += 1
        q.customers.add(customer)
        q.outcomes[outcome] = q.outcomes.get(outcome, 0) + 1
        at = _as_utc(created_at)
        if q.newest is None or at > q.newest:
            q.newest = at
    resolved = _resolutions(since)
    return [
        q
        for q in by_key.values()
        if q.key not in resolved or (q.newest is not None and q.newest > resolved[q.key])
    ]


def _resolutions(since: datetime) -> dict[str, datetime]:
    """When each question was dealt with, of those dealt with since ``since``: one dealt
    with before the period hides none of its messages (all are newer). Read by time, not
    by a list of thousands of keys (a quarter of a 30-day page's time at 100,000
    messages, issue 16)."""
    rows = db.session.execute(
        select(UnansweredResolution.key, UnansweredResolution.at).where(
            UnansweredResolution.at >= since
        )
    )
    return {k: _as_utc(at) for k, at in rows}


def group(questions: list[Question], embed: Embed, threshold: float = GROUP_COSINE) -> list[Group]:
    """Near-duplicates together, most asked first (see the module docstring)."""
    ordered = sorted(
        questions,
        key=lambda q: (-q.count, -(q.newest or datetime.min.replace(tzinfo=UTC)).timestamp()),
    )[:MAX_DISTINCT]
    if not ordered:
        return []
    vectors = np.asarray(embed([q.text for q in ordered]), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.where(norms == 0, 1.0, norms)
    labels = _complete_linkage(vectors, threshold)
    members: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        members.setdefault(int(label), []).append(i)  # in ``ordered``'s order
    groups = []
    for idx in members.values():
        weights = np.array([ordered[i].count for i in idx], dtype=np.float32)[:, None]
        centre = (vectors[idx] * weights).sum(axis=0)
        groups.append(Group([ordered[i] for i in idx], centre / (np.linalg.norm(centre) or 1.0)))
    groups.sort(key=lambda g: (-g.count, -g.newest.timestamp()))
    return groups


def _complete_linkage(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """A cluster label per vector: every two questions of a group are within ``threshold``
    cosine of each other (complete linkage), whatever order they came in."""
    if len(vectors) == 1:
        return np.zeros(1, dtype=int)
    # In place, halved before the float64 scipy wants: 1,500 wordings are 2.25 M pairs.
    distances = vectors @ vectors.T
    np.subtract(1.0, distances, out=distances)
    np.clip(distances, 0.0, 2.0, out=distances)
    np.fill_diagonal(distances, 0.0)
    condensed = squareform(distances, checks=False).astype(np.float64)
    tree = linkage(condensed, method="complete")
    return fcluster(tree, t=1.0 - threshold, criterion="distance")


def group_dict(g: Group, suggestions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    newest_first = sorted(g.questions, key=lambda q: q.newest or datetime.min, reverse=True)
    outcomes: dict[str, int] = {}
    for q in g.questions:
        for name, n in q.outcomes.items():
            outcomes[name] = outcomes.get(name, 0) + n
    return {
        "id": g.questions[0].key,
        "title": g.questions[0].text,
        "count": g.count,
        "customers": len(set().union(*(q.customers for q in g.questions))),
        "newest_at": g.newest.isoformat(),
        "outcomes": outcomes,
        "examples": [
            {"text": q.text, "count": q.count, "at": q.newest.isoformat() if q.newest else None}
            for q in newest_first[:EXAMPLES]
        ],
        "questions": [q.text for q in g.questions],
        "suggestions": suggestions or [],
    }


def resolve(questions: Sequence[str], action: str, actor: str, faq_id: int | None = None) -> int:
    """Mark these questions dealt with (``action``: faq or dismissed), in the current
    transaction; returns how many."""
    now = datetime.now(UTC)
    keys = {key_of(q): q for q in questions if key_of(q)}
    for key, text in keys.items():
        row = db.session.get(UnansweredResolution, key)
        if row is None:
            row = UnansweredResolution(key=key)
            db.session.add(row)
        row.question, row.action, row.faq_id = text[:2000], action, faq_id
        row.actor, row.at = actor[:64], now
    audit.record(
        actor,
        "unanswered." + action,
        f"faq:{faq_id}" if faq_id else "unanswered",
        questions=list(keys.values())[:50],
    )
    return len(keys)
