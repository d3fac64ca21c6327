"""Thresholds for verbatim FAQ answers, derived from labelled questions for one embedder.

Labelled questions come from two places:

- a file of real questions, each with the FAQ question of the entry that answers it, or
  none when nothing in the FAQ does (bench/data has several such sets);
- the FAQ itself, leave-one-out: each listed paraphrase is asked against the entries with
  that paraphrase removed (its entry should win) and against the entries with its whole
  entry removed (nothing should be answered verbatim: the nearest entry is a neighbour).

Every labelled question gets the evidence of its nearest entry (app/faq/table.py); the
thresholds are the ones that answer the most questions verbatim while at most
``max_wrong`` of all questions get a wrong entry's answer (``choose``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from app.faq.matching import AGREEMENT, COVERAGE, Thresholds, verdict
from app.faq.table import Evidence, FaqTable

MATCHES = np.round(np.arange(0.85, 0.995, 0.005), 3)
GAPS = np.round(np.arange(0.0, 0.061, 0.005), 3)
SIMILARITIES = np.round(np.arange(0.80, 0.931, 0.005), 3)


@dataclass
class Labelled:
    question: str
    #: FAQ questions of the entries that answer it; empty: no FAQ entry does.
    gold: set[str] = field(default_factory=set)
    evidence: Evidence | None = None
    source: str = ""

    @property
    def right(self) -> bool:
        return self.evidence is not None and self.evidence.entry.question in self.gold


def table_from_folder(folder: Path, embedder: Any) -> FaqTable:
    """The FAQ table a knowledge folder would give, embedded here (no Milvus needed)."""
    from app.knowledge.chunking import chunk_document
    from app.knowledge.ingest import iter_files
    from app.knowledge.sources import load_document

    rows: list[dict[str, Any]] = []
    for path in iter_files(folder):
        doc = load_document(path, folder)
        if doc.kind != "faq":
            continue
        chunks = chunk_document(doc)
        questions = [c for c in chunks if c.embeds_as_query]
        entries = [c for c in chunks if c.kind == "faq"]
        vectors = [
            *embedder.embed_queries([c.text for c in questions]),
            *embedder.embed_passages([c.embed_text or c.text for c in entries]),
        ]
        for chunk, vector in zip([*questions, *entries], vectors, strict=True):
            rows.append(
                {
                    "chunk_id": chunk.chunk_id,
                    "doc_id": chunk.doc_id,
                    "kind": chunk.kind,
                    "category": chunk.category,
                    "source": chunk.source,
                    "section": chunk.section,
                    "position": chunk.position,
                    "metadata": chunk.metadata,
                    "text": chunk.text,
                    "dense": vector,
                }
            )
    return FaqTable.from_rows(rows)


def label(table: FaqTable, embedder: Any, questions: Sequence[Labelled]) -> list[Labelled]:
    """Each question with the evidence of its nearest entry."""
    vectors = embedder.embed_queries([q.question for q in questions]) if questions else []
    for q, vector in zip(questions, vectors, strict=True):
        found = table.evidence(vector, top=1, question=q.question)
        q.evidence = found[0] if found else None
    return list(questions)


def leave_one_out(table: FaqTable, embedder: Any) -> list[Labelled]:
    """Listed paraphrases asked with themselves left out (their entry should win), and
    with their entry left out (no entry should be answered verbatim)."""
    out: list[Labelled] = []
    asks = [(i, v) for i, e in enumerate(table.entries) for v in e.variants[1:]]
    vectors = embedder.embed_queries([v for _, v in asks]) if asks else []
    for (i, variant), vector in zip(asks, vectors, strict=True):
        entry = table.entries[i]
        own = table.question_index(i, variant)
        found = table.evidence(vector, top=1, without_question=own, question=variant)
        out.append(Labelled(variant, {entry.question}, found[0] if found else None, "listed"))
        found = table.evidence(vector, top=1, without=i, question=variant)
        out.append(Labelled(variant, set(), found[0] if found else None, "entry removed"))
    return out


@dataclass(frozen=True)
class Outcome:
    verbatim_right: int
    verbatim_wrong: int
    answerable: int
    total: int

    def describe(self) -> str:
        return (
            f"{self.verbatim_right}/{self.answerable} answerable questions verbatim "
            f"({100 * self.verbatim_right / max(1, self.answerable):.0f} %), "
            f"{self.verbatim_wrong}/{self.total} questions given a wrong entry's answer "
            f"({100 * self.verbatim_wrong / max(1, self.total):.1f} %)"
        )


def outcome(samples: Iterable[Labelled], thresholds: Thresholds | None) -> Outcome:
    right = wrong = answerable = total = 0
    for s in samples:
        total += 1
        answerable += bool(s.gold)
        if verdict(s.evidence, thresholds) == "verbatim":
            right += s.right
            wrong += not s.right
    return Outcome(right, wrong, answerable, total)


def choose(samples: Sequence[Labelled], max_wrong: float = 0.01, near: float = 0.90) -> Thresholds:
    """The thresholds that answer the most questions verbatim (right) with at most
    ``max_wrong`` of all questions given a wrong answer; among equals, the strictest."""
    rows = [s for s in samples if s.evidence is not None]
    if not rows:
        raise ValueError("no labelled question found an entry")
    m = np.array([s.evidence.match for s in rows])  # type: ignore[union-attr]
    g = np.array([s.evidence.gap for s in rows])  # type: ignore[union-attr]
    sim = np.array([s.evidence.similarity for s in rows])  # type: ignore[union-attr]
    agrees = np.array([s.evidence.agreement >= AGREEMENT for s in rows])  # type: ignore[union-attr]
    covered = np.array([s.evidence.coverage >= COVERAGE for s in rows])  # type: ignore[union-attr]
    right = np.array([s.right for s in rows])
    allowed = int(max_wrong * len(samples))
    best: tuple[int, float, float, float] | None = None
    for t_m in MATCHES:
        ok_m = (m >= t_m) & covered
        for t_g in GAPS:
            ok_mg = ok_m & (g >= t_g) & (agrees | (g >= 2 * t_g))
            for t_s in SIMILARITIES:
                chosen = ok_mg & (sim >= t_s)
                wrong = int((chosen & ~right).sum())
                if wrong > allowed:
                    continue
                key = (int((chosen & right).sum()), float(t_m), float(t_g), float(t_s))
                if best is None or key > best:
                    best = key
    if best is None:
        raise ValueError("no thresholds keep wrong answers within the limit")
    return Thresholds(match=best[1], gap=best[2], similarity=best[3], near=min(near, best[1]))


def with_near(thresholds: Thresholds, near: float) -> Thresholds:
    return replace(thresholds, near=near)
