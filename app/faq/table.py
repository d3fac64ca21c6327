"""Every FAQ entry with the vectors of its questions, in memory, matched without a round trip.

A web process answers an FAQ question as the reply to WeChat's first request, and a worker
decides before the model whether a question is an entry's: both need the nearest entry
and how clear the choice is, exactly, over all entries (a search returns only the rows it
ranked). So each process keeps a table, read from the knowledge collection's FAQ rows
(app/knowledge/chunking.py: an entry row embedded with its answer, a row per question
embedded as a query) at start and every ``REFRESH_S``. Scoring a question is one
matrix-vector product: about 0.1 ms for a thousand entries, next to 5-15 ms for the
question's embedding, which the store's embedding cache shares with retrieval.

A question that is an entry's own or a listed paraphrase nearly to the character (typos,
punctuation: ``FAQ_DIRECT_THRESHOLD``) is found by characters alone, without embedding.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from app.knowledge.lexical import content_terms
from app.text import normalise

log = logging.getLogger(__name__)

REFRESH_S = 60.0
#: How often a process asks whether the knowledge changed (``TableHolder``'s ``stamp``):
#: an FAQ entry staff write on the page is answered by every process this soon after.
POLL_S = 2.0
#: A clause of a message counts on its own (``FaqTable.coverage``) from this many terms.
MIN_CLAUSE_TERMS = 3
_CLAUSE = re.compile(r"[，,。.!！？?；;\s]+")
MAX_BACKOFF_S = 900.0
#: The entries after the nearest (by its questions) whose answers it is compared with.
AGREEMENT_PEERS = 2
#: Milvus' cap on one query's offset + limit: larger FAQ sets are not held (entries and
#: questions together).
MAX_ROWS = 16384


@dataclass(frozen=True)
class FaqEntry:
    """One FAQ entry as stored: shaped like a search hit (``metadata``, ``source``...), so
    the pipeline can treat it as a passage."""

    chunk_id: str
    question: str
    answer: str
    variants: tuple[str, ...]
    category: str = ""
    source: str = ""
    section: str = ""
    doc_id: str = ""
    position: int = 0
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    kind: str = "faq"

    @property
    def text(self) -> str:
        return "\n".join([self.question, *self.variants[1:], self.answer])


@dataclass(frozen=True)
class Evidence:
    """How a question relates to one entry.

    ``match``: cosine with the nearest of the entry's questions (question against question);
    ``gap``: how far ahead of the next entry's nearest question that is; ``similarity``:
    cosine with the entry's question and answer together (a question about one detail of
    the answer is near it); ``characters``: the question is one of the entry's own nearly to
    the character (then the other numbers may be 0: no embedding was needed).
    """

    entry: FaqEntry
    match: float
    gap: float
    similarity: float
    characters: bool = False
    #: How far this entry's ``similarity`` is ahead of the next nearest entries' (the two
    #: after it by ``match``): negative when another entry's answer is closer.
    agreement: float = 1.0
    #: The share of what the question is about (``lexical.content_terms``) that the entry's
    #: questions and answer mention: "押金多少钱" asks about 钱, which "押金多久能退回来"
    #: does not mention, however near the two are by meaning.
    coverage: float = 1.0


class _CharIndex:
    """Normalised questions, and an index from each character to the questions holding it,
    to bound difflib's ratio before computing it."""

    def __init__(self) -> None:
        self.exact: dict[str, int] = {}
        self.keys: list[tuple[int, frozenset[str], int, str]] = []
        self.postings: dict[str, list[int]] = {}

    def add(self, key: str, entry: int) -> None:
        self.exact.setdefault(key, entry)
        chars = frozenset(key)
        for char in chars:
            self.postings.setdefault(char, []).append(len(self.keys))
        self.keys.append((len(key), chars, entry, key))

    def find(self, q: str, threshold: float) -> int | None:
        """The entry one of whose questions has a difflib ratio of at least ``threshold``
        with ``q`` (the best such), or None."""
        if q in self.exact:
            return self.exact[q]
        n, chars = len(q), frozenset(q)
        # ratio = 2M/(n+m) >= t, with M matched characters <= min(n, m), bounds m...
        lo, hi = math.ceil(threshold * n / (2 - threshold)), int((2 - threshold) * n / threshold)
        # ...and M <= n less the question's characters a key lacks: few may be missing.
        missing = max(0, n - math.ceil(threshold * (n + lo) / 2))
        shared = Counter(chain.from_iterable(self.postings.get(c, ()) for c in chars))
        need = len(chars) - missing
        best, best_score = None, 0.0
        for i, count in shared.items():
            m, key_chars, entry, key = self.keys[i]
            if count < need or not lo <= m <= hi:
                continue
            matches = min(n - len(chars - key_chars), m - len(key_chars - chars))
            if 2 * matches < threshold * (n + m):
                continue
            score = difflib.SequenceMatcher(None, q, key).ratio()
            if score >= threshold and score > best_score:
                best, best_score = entry, score
        return best


class FaqTable:
    """The FAQ entries of one collection and their vectors."""

    def __init__(
        self,
        entries: Sequence[FaqEntry],
        question_vectors: np.ndarray,
        owners: np.ndarray,
        entry_vectors: np.ndarray,
        question_texts: Sequence[str] = (),
    ) -> None:
        self.entries = list(entries)
        self._questions = question_vectors  # (questions, dim), unit rows
        self._owners = owners  # (questions,): the entry of each question
        self._question_texts = list(question_texts)
        self._question_at: dict[tuple[int, str], int] | None = None
        self._entry_vectors = entry_vectors  # (entries, dim)
        self._char_index: _CharIndex | None = None
        self._vocabulary: list[frozenset[str]] | None = None

    def _chars(self) -> _CharIndex:
        if self._char_index is None:
            index = _CharIndex()
            for i, entry in enumerate(self.entries):
                for variant in entry.variants:
                    if key := normalise(variant):
                        index.add(key, i)
            self._char_index = index
        return self._char_index

    def __len__(self) -> int:
        return len(self.entries)

    def coverage(self, question: str, entry: int) -> float:
        """The share of the question's content terms that entry number ``entry`` mentions,
        in the whole message or in one of its clauses: a customer who says who they are or
        what they bought before asking ("我昨天买的电饭煲，下单后多久发货") asks the clause."""
        if self._vocabulary is None:
            self._vocabulary = [
                frozenset(content_terms(" ".join(e.variants)) | content_terms(e.answer))
                for e in self.entries
            ]
        known = self._vocabulary[entry]
        whole = content_terms(question)
        if not whole:
            return 1.0
        best = len(whole & known) / len(whole)
        for part in _CLAUSE.split(question):
            asked = content_terms(part)
            if len(asked) >= MIN_CLAUSE_TERMS:
                best = max(best, len(asked & known) / len(asked))
        return best

    @classmethod
    def empty(cls) -> FaqTable:
        none = np.zeros((0, 0), dtype=np.float32)
        return cls([], none, np.zeros(0, dtype=np.int64), none)

    @classmethod
    def from_rows(cls, rows: Sequence[dict[str, Any]]) -> FaqTable:
        """From the collection's FAQ rows (KnowledgeStore.faq_rows): an entry row and its
        question rows share the document and position."""
        entry_rows: dict[tuple[str, int], dict[str, Any]] = {}
        question_rows: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for row in rows:
            key = (str(row.get("doc_id", "")), int(row.get("position", 0) or 0))
            if row.get("kind") == "faq":
                entry_rows[key] = row
            else:
                question_rows.setdefault(key, []).append(row)
        entries: list[FaqEntry] = []
        entry_vectors: list[Any] = []
        question_vectors: list[Any] = []
        question_texts: list[str] = []
        owners: list[int] = []
        for key, row in sorted(entry_rows.items()):
            meta = row.get("metadata") or {}
            questions = question_rows.get(key, [])
            if not (isinstance(meta, dict) and meta.get("question") and meta.get("answer")):
                continue
            if row.get("dense") is None or not questions:
                continue
            similar = [str(v) for v in meta.get("similar_questions") or []]
            entries.append(
                FaqEntry(
                    chunk_id=str(row.get("chunk_id", "")),
                    question=str(meta["question"]).strip(),
                    answer=str(meta["answer"]).strip(),
                    variants=tuple(dict.fromkeys([str(meta["question"]).strip(), *similar])),
                    category=str(row.get("category", "")),
                    source=str(row.get("source", "")),
                    section=str(row.get("section", "")),
                    doc_id=key[0],
                    position=key[1],
                    metadata=dict(meta),
                )
            )
            entry_vectors.append(row["dense"])
            for q in questions:
                question_vectors.append(q["dense"])
                question_texts.append(str(q.get("text", "")))
                owners.append(len(entries) - 1)
        if not entries:
            return cls.empty()
        return cls(
            entries,
            _unit(np.asarray(question_vectors, dtype=np.float32)),
            np.asarray(owners, dtype=np.int64),
            _unit(np.asarray(entry_vectors, dtype=np.float32)),
            question_texts,
        )

    def question_index(self, entry: int, text: str) -> int | None:
        """Which question row is ``text`` of entry number ``entry`` (calibration)."""
        if self._question_at is None:
            pairs = zip(self._owners.tolist(), self._question_texts, strict=False)
            self._question_at = {(o, t): i for i, (o, t) in enumerate(pairs)}
        return self._question_at.get((entry, text))

    def by_characters(self, question: str, threshold: float) -> FaqEntry | None:
        """The entry one of whose questions ``question`` is, nearly to the character."""
        q = normalise(question)
        if not q or not self.entries:
            return None
        found = self._chars().find(q, threshold)
        return self.entries[found] if found is not None else None

    def evidence(
        self,
        vector: Sequence[float] | np.ndarray,
        *,
        top: int = 3,
        without: int | None = None,
        without_question: int | None = None,
        question: str | None = None,
    ) -> list[Evidence]:
        """The ``top`` entries nearest to a question's vector, nearest first; with the
        ``question``'s text, each with its coverage. ``without`` leaves one entry out,
        ``without_question`` one question row (calibration: a question whose entry, or whose
        own listing, is missing)."""
        if not self.entries:
            return []
        q = np.asarray(vector, dtype=np.float32)
        per_question = self._questions @ q
        if without_question is not None:
            per_question[without_question] = -1.0
        match = np.full(len(self.entries), -1.0, dtype=np.float32)
        np.maximum.at(match, self._owners, per_question)
        if without is not None:
            match[without] = -1.0
        similarity = self._entry_vectors @ q
        order = np.argsort(-match, kind="stable")[: max(top, AGREEMENT_PEERS + 1)]
        runner_up = float(match[order[1]]) if len(order) > 1 else -1.0
        out = []
        for rank, i in enumerate(order[:top]):
            if match[i] < -0.5:
                break
            beaten = float(match[order[0]]) if rank else runner_up
            peers = [j for j in order[: AGREEMENT_PEERS + 1] if j != i and match[j] > -0.5]
            agreement = float(similarity[i] - max(similarity[j] for j in peers)) if peers else 1.0
            out.append(
                Evidence(
                    self.entries[i],
                    float(match[i]),
                    float(match[i]) - beaten,
                    float(similarity[i]),
                    agreement=agreement,
                    coverage=1.0 if question is None else self.coverage(question, int(i)),
                )
            )
        return out


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


class TableHolder:
    """One process's table of one collection, kept fresh by a background thread.

    While Milvus cannot be read the thread keeps the last table and retries less and less
    often (up to ``MAX_BACKOFF_S``): every attempt waits out a connection timeout under
    pymilvus's connection lock, which other readers (health checks) queue behind.

    ``stamp``, when given, is asked every ``POLL_S`` for a value that changes whenever the
    knowledge does (the documents table's last change: app/faq/publishing.py); a new value
    reads the table at once instead of at the next ``REFRESH_S``."""

    def __init__(
        self,
        load_rows: Callable[[], Sequence[dict[str, Any]]],
        stamp: Callable[[], object] | None = None,
    ) -> None:
        self._load_rows = load_rows
        self._stamp = stamp
        self._table: FaqTable | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def refresh(self) -> FaqTable:
        table = FaqTable.from_rows(self._load_rows())
        self._table = table  # swapped whole: readers see the old table or the new one
        return table

    def get(self, *, wait: bool = True) -> FaqTable | None:
        """The table; the first call reads it (``wait``) or returns None while a background
        read is under way (a web request must not wait for Milvus)."""
        self._start()
        if self._table is None and wait:
            with self._lock:
                if self._table is None:
                    self.refresh()
        return self._table

    def stop(self) -> None:
        """End the background refresh; the next ``get`` starts it again."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None:
            thread.join(timeout=1.0)

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._forever, args=(self._stop,), name="faq-table", daemon=True
                )
                self._thread.start()

    def _changed(self, seen: object) -> tuple[bool, object]:
        if self._stamp is None:
            return False, seen
        try:
            now = self._stamp()
        except Exception:  # noqa: BLE001 - the database is down: the period still refreshes
            return False, seen
        return now is not None and now != seen, now

    def _forever(self, stop: threading.Event) -> None:
        last, failures = -1, 0
        _, seen = self._changed(None)
        while not stop.is_set():
            try:
                count = len(self.refresh())
                if count != last:
                    log.info("FAQ table ready (%d entries)", count)
                last, failures = count, 0
            except Exception as exc:  # noqa: BLE001 - Milvus down: keep the last table, retry
                if not failures:
                    log.warning("could not read the FAQ entries: %s", exc)
                failures += 1
            due = min(REFRESH_S * 2 ** min(failures, 8), MAX_BACKOFF_S)
            waited = 0.0
            while waited < due and not stop.wait(min(POLL_S, due - waited)):
                waited += POLL_S
                changed, seen = self._changed(seen)
                if changed and not failures:
                    break
