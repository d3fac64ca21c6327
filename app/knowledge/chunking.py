"""Cutting documents into retrievable chunks.

Chinese has no spaces, so text is cut at sentence punctuation (。！？；!?;) and line breaks,
never inside a sentence unless one sentence alone is longer than a chunk. Each chunk starts
with its heading path, which gives both BM25 and the model the topic a bare paragraph lacks.
A table (``| a | b |`` rows) stays in one chunk when it fits; a longer one is cut between
rows, each piece repeating the header row. A PDF is chunked page by page, so every chunk cites
its page. An FAQ entry is one chunk: its question, similar questions and answer must come
back together. Each of its questions (the question and every listed paraphrase) is also a
small chunk of its own, kind ``faq_q``, embedded as a query: a customer's question is
compared with each way staff wrote the question, and the entry counts by its nearest one
(the search folds them back into the entry; bench/RESULTS.md, "Retrieval").
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from typing import Any

from app.knowledge.sources import Document, FaqEntry
from app.text import split_sentences

DEFAULT_MAX_CHARS = 360
DEFAULT_OVERLAP = 60
SECTION_SEPARATOR = " > "

_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")


@dataclass(frozen=True)
class Chunk:
    """One indexed unit. ``chunk_id`` hashes the document id and the text, so an unchanged
    chunk keeps its id (and its stored vector) when other parts of the document change."""

    chunk_id: str
    doc_id: str
    doc_sha256: str
    kind: str
    text: str
    source: str
    section: str
    position: int
    category: str = ""
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    #: What the dense vector is made of when it is not ``text``: an FAQ entry's question
    #: and answer (its questions have chunks of their own), while BM25 indexes the whole
    #: entry.
    embed_text: str = ""

    @property
    def embeds_as_query(self) -> bool:
        """A question chunk is compared question to question: embedded as a query (E5's
        prefix for symmetric tasks), not as a passage."""
        return self.kind == FAQ_QUESTION


#: Kinds of chunk: a passage of a document, an FAQ entry, one question of an FAQ entry.
TEXT, FAQ, FAQ_QUESTION = "text", "faq", "faq_q"


def faq_entry_text(question: str, similar: list[str], answer: str) -> str:
    """What an FAQ entry's chunk holds (and what BM25 indexes of it)."""
    return "\n".join([question, *similar, answer])


def chunk_id_for(doc_id: str, text: str, occurrence: int = 0) -> str:
    """Stable id of a chunk: its document and its text (``occurrence`` tells repeated texts
    apart). Position and metadata are left out on purpose: a row inserted above, or a changed
    category, rewrites those fields but keeps the id, and so keeps the stored vector."""
    payload = "\x1f".join([doc_id, str(occurrence), text])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def _with_ids(chunks: list[Chunk]) -> list[Chunk]:
    seen: dict[str, int] = {}
    out: list[Chunk] = []
    for chunk in chunks:
        n = seen.get(chunk.text, 0)
        seen[chunk.text] = n + 1
        # The id names the vector too (a stored vector is reused by id): it covers
        # embed_text whenever that is not the text itself.
        keyed = f"{chunk.text}\x1e{chunk.embed_text}" if chunk.embed_text else chunk.text
        out.append(replace(chunk, chunk_id=chunk_id_for(chunk.doc_id, keyed, n)))
    return out


def split_sections(text: str) -> list[tuple[str, str]]:
    """(heading path, body) pairs for markdown-style headings; text before the first heading
    gets an empty path. Headings inside fenced code blocks are body text."""
    sections: list[tuple[str, str]] = []
    stack: list[tuple[int, str]] = []
    body: list[str] = []
    in_fence = False

    def flush() -> None:
        joined = "\n".join(body).strip()
        if joined:
            sections.append((SECTION_SEPARATOR.join(t for _, t in stack), joined))
        body.clear()

    for line in text.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        m = None if in_fence else _HEADING.match(line)
        if m:
            flush()
            level = len(m.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, m.group(2).strip()))
        else:
            body.append(line)
    flush()
    return sections


def split_units(text: str, max_chars: int) -> list[str]:
    """Sentences, with each table kept as one unit (or, when longer than ``max_chars``, as
    pieces of whole rows that each start with the header row)."""
    units: list[str] = []
    prose: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if not _TABLE_ROW.match(lines[i]):
            prose.append(lines[i])
            i += 1
            continue
        rows = []
        while i < len(lines) and _TABLE_ROW.match(lines[i]):
            rows.append(lines[i].strip())
            i += 1
        units.extend(split_sentences("\n".join(prose)))
        prose = []
        header, body = rows[0], rows[1:]
        piece = [header]
        for row in body:
            if len("\n".join([*piece, row])) > max_chars and len(piece) > 1:
                units.append("\n".join(piece) + "\n")
                piece = [header]
            piece.append(row)
        units.append("\n".join(piece) + "\n")
    units.extend(split_sentences("\n".join(prose)))
    return units


def _joined(pieces: list[str]) -> str:
    return "".join(pieces).strip()


def pack_sentences(sentences: list[str], max_chars: int, overlap: int) -> list[str]:
    """Greedy packing into pieces of at most ``max_chars``; each piece after the first repeats
    up to ``overlap`` characters of whole trailing sentences from the previous one, so a fact
    split across a boundary is still retrievable from either side."""
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    overlap = max(0, min(overlap, max_chars // 2))
    units: list[str] = []
    for s in sentences:
        if len(s) <= max_chars:
            units.append(s)
            continue
        # One sentence longer than a chunk: fixed windows that overlap like chunks do.
        step = max(1, max_chars - overlap)
        windows = [s[i : i + max_chars] for i in range(0, len(s), step)]
        if len(windows) >= 2 and len(s) - (len(windows) - 1) * step <= overlap:
            windows.pop()  # the last window would only repeat the previous one's tail
        units.extend(w for w in windows if w.strip())
    chunks: list[str] = []
    current: list[str] = []
    fresh = 0
    for unit in units:
        candidate = _joined([*current, unit])
        if current and len(candidate) > max_chars:
            if fresh:
                chunks.append(_joined(current))
            tail: list[str] = []
            for prev in reversed(current):
                if len(_joined([prev, *tail])) > overlap:
                    break
                tail.insert(0, prev)
            while tail and len(_joined([*tail, unit])) > max_chars:
                tail.pop(0)
            current, fresh = tail, 0
        current.append(unit)
        fresh += 1
    if current and fresh:
        chunks.append(_joined(current))
    return chunks


def _faq_chunk(doc: Document, entry: FaqEntry, position: int) -> Chunk:
    text = faq_entry_text(entry.question, list(entry.similar_questions), entry.answer)
    metadata: dict[str, Any] = {
        "title": doc.title,
        "question": entry.question,
        "answer": entry.answer,
        "similar_questions": list(entry.similar_questions),
        "category": entry.category,
        "row": entry.row,
    }
    category = entry.category or doc.category
    metadata["category"] = category
    return Chunk(
        chunk_id="",
        doc_id=doc.doc_id,
        doc_sha256=doc.sha256,
        kind=FAQ,
        text=text,
        source=doc.source,
        section=category,
        position=position,
        category=category,
        metadata=metadata,
        embed_text=f"{entry.question}\n{entry.answer}",
    )


def _question_chunks(entry: Chunk) -> list[Chunk]:
    """One chunk per question of an FAQ entry, at the entry's position and carrying its
    metadata, so that a search that finds only the question can return the whole entry."""
    meta = entry.metadata
    variants = dict.fromkeys(
        v.strip() for v in [meta["question"], *meta["similar_questions"]] if v.strip()
    )
    return [
        replace(
            entry,
            chunk_id="",
            kind=FAQ_QUESTION,
            text=variant,
            embed_text="",
            metadata={**meta, "entry_chunk_id": entry.chunk_id},
        )
        for variant in variants
    ]


def _text_chunks(doc: Document, max_chars: int, overlap: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    if doc.pages:
        parts = [(n, t) for n, t in enumerate(doc.pages, start=1) if t.strip()]
    else:
        parts = [(None, doc.text)]
    for page, part in parts:
        for section, body in split_sections(part):
            _section_chunks(doc, section, body, page, max_chars, overlap, chunks)
    return chunks


def _section_chunks(
    doc: Document,
    section: str,
    body: str,
    page: int | None,
    max_chars: int,
    overlap: int,
    chunks: list[Chunk],
) -> None:
    label = section or doc.title
    # The label heads every chunk; it may take at most half of the length budget.
    if len(label) > max_chars // 2:
        label = label[: max_chars // 2 - 1] + "…"
    budget = max_chars - len(label) - 1 if label else max_chars
    for piece in pack_sentences(split_units(body, budget), budget, overlap):
        text = f"{label}\n{piece}" if label else piece
        position = len(chunks)
        metadata: dict[str, Any] = {"title": doc.title, "section": section}
        if page is not None:
            metadata["page"] = page
        if doc.category:
            metadata["category"] = doc.category
        chunks.append(
            Chunk(
                chunk_id="",
                doc_id=doc.doc_id,
                doc_sha256=doc.sha256,
                kind=TEXT,
                text=text,
                source=doc.source,
                section=section,
                position=position,
                category=doc.category,
                metadata=metadata,
            )
        )


def chunk_document(
    doc: Document, *, max_chars: int = DEFAULT_MAX_CHARS, overlap: int = DEFAULT_OVERLAP
) -> list[Chunk]:
    """All chunks of a document, positions numbered from 0 in reading order.

    Text chunks never exceed ``max_chars`` (heading label included); an FAQ chunk is one entry
    whatever its length.
    """
    if doc.kind == "faq":
        entries = _with_ids([_faq_chunk(doc, entry, i) for i, entry in enumerate(doc.faqs)])
        questions = [q for e in entries for q in _question_chunks(e)]
        return entries + _with_ids(questions)
    return _with_ids(_text_chunks(doc, max_chars, overlap))
