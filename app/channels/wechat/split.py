"""Splitting long answers for WeChat's per-message limit, on sentence boundaries."""

from __future__ import annotations

from app.text import split_sentences

MAX_BYTES = 2048
MAX_PIECES = 5  # WeChat allows 5 customer-service messages per customer message


def split_message(text: str, max_bytes: int = MAX_BYTES, max_pieces: int = MAX_PIECES) -> list[str]:
    text = text.strip()
    if len(text.encode("utf-8")) <= max_bytes:
        return [text] if text else []
    pieces: list[str] = []
    current = ""
    for sentence in split_sentences(text, verbatim=True):
        for part in _hard_wrap(sentence, max_bytes):
            if len((current + part).encode("utf-8")) > max_bytes:
                pieces.append(current.strip())
                current = part
            else:
                current += part
    if current.strip():
        pieces.append(current.strip())
    if len(pieces) > max_pieces:
        pieces = pieces[:max_pieces]
        tail = "…"
        while len((pieces[-1] + tail).encode("utf-8")) > max_bytes:
            pieces[-1] = pieces[-1][:-1]
        pieces[-1] += tail
    return [p for p in pieces if p]


def _hard_wrap(sentence: str, max_bytes: int) -> list[str]:
    """A single sentence over the limit is cut by characters, never inside a UTF-8 sequence."""
    out, cur = [], ""
    for ch in sentence:
        if len((cur + ch).encode("utf-8")) > max_bytes:
            out.append(cur)
            cur = ""
        cur += ch
    return out + [cur] if cur else out
