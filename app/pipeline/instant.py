"""FAQ answers in the web process, so they go back as the reply to WeChat's first request.

A question that is an FAQ entry's (app/faq/matching.py: by characters, or by meaning with
the verbatim thresholds) needs no model. Each web process keeps the FAQ table in memory
(app/faq/table.py, refreshed in the background) and answers such a question itself:

- by characters first: a listed question or paraphrase, nearly to the character, costs
  microseconds;
- by meaning next: one embedding of the question (5-15 ms of CPU on two cores; the cache
  serves repeats) and one matrix product over the table. A burst must not let embeddings
  crowd out the acknowledgements WeChat waits for, so a process embeds at most
  ``FAQ_INSTANT_MAX_RATE`` questions a second; the others go to the workers, which match
  them the same way before anything else.

Anything else takes the normal path. The table is never waited for: until a process has
read it, its questions go to the workers.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from app import resources
from app.channels.wechat.split import MAX_BYTES
from app.faq.matching import Match
from app.pipeline.postprocess import to_plain_text
from app.pipeline.privacy import mask_pii
from app.pipeline.sensitive import load_filter
from app.settings import Settings


@dataclass(frozen=True)
class InstantAnswer:
    text: str
    sources: str  # JSON, as stored with every answer
    #: How it was found (the stored outcome's detail).
    detail: dict[str, Any] = field(default_factory=dict)


#: Characters past which a message is no FAQ question (the FAQ questions and paraphrases of
#: knowledge/ and bench/data have at most 19, customers' questions there at most 41): a
#: pasted page is not compared by characters with every FAQ question nor
#: embedded on the callback's path, where WeChat waits at most 5 s (a 3,000-character
#: paste's callback timed out in tests/e2e/test_wechat_delivery.py on a loaded machine).
MAX_QUESTION_CHARS = 200


class RateBudget:
    """A token bucket: at most ``rate`` takes a second (a second's worth at once)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tokens = rate
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        if self.rate <= 0:
            return False
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True


_budgets: dict[float, RateBudget] = {}
_budget_lock = threading.Lock()


def _budget(settings: Settings) -> RateBudget:
    with _budget_lock:
        budget = _budgets.get(settings.faq_instant_max_rate)
        if budget is None:
            budget = _budgets[settings.faq_instant_max_rate] = RateBudget(
                settings.faq_instant_max_rate
            )
        return budget


def start(settings: Settings) -> None:
    """Starts reading this process's FAQ table in the background (web processes call this)."""
    if settings.instant_faq:
        resources.faq_tables(settings).get(wait=False)


def lookup(question: str, settings: Settings) -> InstantAnswer | None:
    """The stored answer when ``question`` is an FAQ entry's, else None. Never waits for
    Milvus or the model, nor reads a pasted page: a message longer than any customer's
    question (MAX_QUESTION_CHARS) goes the worker's way."""
    q = mask_pii(question.strip())
    if not (settings.instant_faq and q) or len(q) > MAX_QUESTION_CHARS:
        return None
    matcher = resources.faq_matcher(settings, wait=False)
    match = matcher.by_characters(q)
    if match is None and matcher.thresholds is not None and _budget(settings).take():
        match = matcher.best(q)
    if match is None or match.verdict != "verbatim":
        return None
    return _answer(match, settings)


def remember(customer: str, question: str, answer: str, settings: Settings) -> None:
    """The exchange goes into the customer's conversation memory, as the worker's answers
    do, so a follow-up ("那预售的呢？") is understood."""
    if settings.memory_turns <= 0:
        return
    from app.extensions import db
    from app.pipeline.memory import SqlMemory

    memory = SqlMemory(db.engine, turns=settings.memory_turns, ttl_s=settings.memory_ttl_s)
    memory.remember(customer, mask_pii(question.strip()), answer)


def _answer(match: Match, settings: Settings) -> InstantAnswer | None:
    entry = match.entry
    text = mask_pii(
        load_filter(settings.sensitive_words_file)(to_plain_text(entry.answer)), [entry.answer]
    )
    if not text or len(text.encode()) > MAX_BYTES:
        return None  # several messages: the normal path splits and sends them
    ev = match.evidence
    source = {"source": entry.source, "section": entry.section, "score": round(ev.match, 4)}
    detail = {
        "via": "characters" if ev.characters else "meaning",
        "where": "web",
        "entry": entry.chunk_id,
        "question": entry.question,
        "match": round(ev.match, 4),
        "gap": round(ev.gap, 4),
        "similarity": round(ev.similarity, 4),
    }
    return InstantAnswer(text, json.dumps([source], ensure_ascii=False), detail)
