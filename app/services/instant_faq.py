"""FAQ answers in the web process, so they go back as the reply to WeChat's first request.

An FAQ hit needs retrieval but no model: the pipeline's `faq_match` takes the hit whose
question (or a listed paraphrase) is the customer's question nearly to the character.
Each web process keeps the FAQ entries of the knowledge collection in memory (a
background thread reads them from Milvus at start and every REFRESH_S seconds), and asks
`faq_match` over the entries that can reach the threshold by length and by characters.
That costs tens of microseconds and no round trip: a Milvus search per callback (even BM25 alone;
with the embedding, tens of ms of CPU) collapsed the acknowledgement benchmark at 200
messages/s (bench/ack_latency.py, see the commit message). Whatever is not a hit takes
the normal path, whose retrieval also finds paraphrases this exact match does not.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from app import resources
from app.channels.wechat.split import MAX_BYTES
from app.pipeline.answer import faq_match
from app.settings import Settings

log = logging.getLogger(__name__)

REFRESH_S = 60.0
#: Milvus' cap on one query's offset + limit; a larger FAQ set is not held in memory.
MAX_ENTRIES = 16384
_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)


@dataclass(frozen=True)
class InstantAnswer:
    text: str
    sources: str  # JSON, as stored with every answer


@dataclass(frozen=True)
class _Entry:
    """Shaped like a search hit, so the pipeline's own faq_match judges it."""

    metadata: dict[str, Any]
    source: str
    section: str
    score: float = 1.0


@dataclass
class _Table:
    """FAQ questions and paraphrases, normalised: exact keys, and an index from each
    character to the keys holding it, to bound difflib's ratio before computing it."""

    exact: dict[str, _Entry] = field(default_factory=dict)
    keys: list[tuple[int, frozenset[str], _Entry]] = field(default_factory=list)
    postings: dict[str, list[int]] = field(default_factory=dict)
    size: int = 0

    def add(self, key: str, entry: _Entry) -> None:
        self.exact.setdefault(key, entry)
        chars = frozenset(key)
        for char in chars:
            self.postings.setdefault(char, []).append(len(self.keys))
        self.keys.append((len(key), chars, entry))

    def candidates(self, q: str, threshold: float) -> list[_Entry]:
        n, chars = len(q), frozenset(q)
        # ratio = 2M/(n+m) >= t, with M matched characters <= min(n, m), bounds m...
        lo, hi = math.ceil(threshold * n / (2 - threshold)), int((2 - threshold) * n / threshold)
        # ...and M <= n less the question's characters a key lacks: few may be missing.
        missing = max(0, n - math.ceil(threshold * (n + lo) / 2))
        shared = Counter(chain.from_iterable(self.postings.get(c, ()) for c in chars))
        need = len(chars) - missing
        found: dict[int, _Entry] = {}
        for i, count in shared.items():
            m, key_chars, entry = self.keys[i]
            if count < need or not lo <= m <= hi:
                continue
            matches = min(n - len(chars - key_chars), m - len(key_chars - chars))
            if 2 * matches >= threshold * (n + m):
                found[id(entry)] = entry
        return list(found.values())


_table = _Table()
_started = threading.Lock()
_thread: threading.Thread | None = None


def _norm(text: str) -> str:
    return _NOISE.sub("", text).lower()


def start(settings: Settings) -> None:
    """Keeps this process's FAQ table fresh in the background (web processes call this)."""
    global _thread
    if not settings.instant_faq:
        return
    with _started:
        if _thread is None:
            _thread = threading.Thread(
                target=_refresh_forever, args=(settings,), name="faq-table", daemon=True
            )
            _thread.start()


def _refresh_forever(settings: Settings) -> None:
    stop = threading.Event()
    last = -1
    while True:
        try:
            count = refresh(settings)
            if count != last:
                log.info("instant FAQ answers ready (%d entries)", count)
            last = count
        except Exception as exc:  # noqa: BLE001 - Milvus down: keep the last table, retry
            log.warning("could not read the FAQ entries for instant answers: %s", exc)
        stop.wait(REFRESH_S)


def refresh(settings: Settings) -> int:
    """Reads the FAQ entries of the knowledge collection into this process's table."""
    global _table
    client = resources.milvus_client(settings)
    name = resources.serving_collection(settings)
    if not client.has_collection(name):
        _table = _Table()
        return 0
    rows = client.query(
        name,
        filter='kind == "faq"',
        output_fields=["metadata", "source", "section"],
        limit=MAX_ENTRIES,
    )
    table = _Table()
    for row in rows:
        meta = row.get("metadata") or {}
        if not (isinstance(meta, dict) and meta.get("question") and meta.get("answer")):
            continue
        entry = _Entry(meta, str(row.get("source", "")), str(row.get("section", "")))
        for variant in [meta["question"], *(meta.get("similar_questions") or [])]:
            if key := _norm(str(variant)):
                table.add(key, entry)
        table.size += 1
    _table = table  # swapped whole: readers see the old table or the new one
    return table.size


def lookup(question: str, settings: Settings) -> InstantAnswer | None:
    """The FAQ's stored answer when ``question`` is an FAQ hit, else None. In memory only."""
    q = _norm(question)
    if not (settings.instant_faq and q and _table.size):
        return None
    faq: Any = _table.exact.get(q)  # the same text scores 1.0: faq_match could only tie
    if faq is None:
        candidates = _table.candidates(q, settings.faq_direct_threshold)
        faq = faq_match(question, candidates, settings.faq_direct_threshold) if candidates else None
    if faq is None:
        return None
    text = str(faq.metadata["answer"]).strip()
    if not text or len(text.encode()) > MAX_BYTES:
        return None  # several messages: the normal path splits and sends them
    source = {"source": faq.source, "section": faq.section, "score": 1.0}
    return InstantAnswer(text, json.dumps([source], ensure_ascii=False))
