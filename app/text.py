"""The text rules every part shares: where a sentence ends, and what of a text counts when
two are compared by their characters.

One sentence splitter, ``split_sentences``, used for chunking documents and for cutting
long answers into WeChat messages; the answer check reads the model's output as it
streams and asks ``sentence_end`` where its first sentence ends. All three end a sentence
at the same marks, ``SENTENCE_MARKS``; how they cut differs on purpose (see each).

One normaliser, ``normalise``: FAQ matching by characters and the "asks for a person" check
both compare texts without spaces and punctuation.
"""

from __future__ import annotations

import re

#: What ends a sentence, Chinese and Latin: 。！？；!?;
SENTENCE_MARKS = "。！？；!?;"

# A sentence ends after terminal punctuation (plus closing quotes/brackets), at a line
# break, or at an ASCII full stop followed by whitespace (not inside "3.5").
_SENTENCE_END = re.compile(rf"[{SENTENCE_MARKS}]+[”’\"'」』）)\]]*|\n+|(?<!\d)\.(?=\s)")
# After every sentence mark or line break (zero-width: the text is kept as it is).
_BREAK_AFTER = re.compile(rf"(?<=[{SENTENCE_MARKS}\n])")
# A run of sentence marks and line breaks, as the answer check finds it in a stream.
_STREAM_END = re.compile(rf"[{SENTENCE_MARKS}\n]+")
# Whitespace, punctuation and symbols, and underscores.
_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)


def split_sentences(text: str, *, verbatim: bool = False) -> list[str]:
    """The sentences of ``text``.

    By default (chunking documents) each sentence keeps its trailing punctuation and any
    closing quote or bracket after it, an ASCII full stop followed by a space ends a Latin
    sentence, and the separator is tidied: a line break stays a line break (lists and
    tables keep their shape), a Latin sentence keeps one space, CJK sentences join with
    nothing, and blank lines and runs of spaces go, so ``"".join(...)`` rebuilds readable
    text.

    ``verbatim=True`` (a long answer cut into WeChat messages): the pieces join back to
    ``text`` exactly, cut after every sentence mark or line break. The answer's own line
    breaks and blank lines must reach the customer as written, and only where a message
    may break matters, since the pieces are joined again up to WeChat's size limit.
    """
    if verbatim:
        return [s for s in _BREAK_AFTER.split(text) if s]
    padded = text + "\n"  # so the last sentence ends like the others
    out: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(padded):
        raw = padded[start : m.end()]
        start = m.end()
        core = raw.strip()
        if not core:
            if "\n" in raw and out and not out[-1].endswith("\n"):
                out[-1] = out[-1].rstrip(" ") + "\n"
            continue
        if "\n" in m.group():
            sep = "\n"
        elif core[-1].isascii() and padded[start : start + 1].isspace():
            sep = " "
        else:
            sep = ""
        out.append(core + sep)
    return out


def sentence_end(text: str) -> int | None:
    """Where the first sentence of streamed ``text`` ends (after its run of sentence marks
    and line breaks), or None while it has not ended. For output read as it streams: no
    closing quotes or Latin full stops, whose meaning depends on what has not arrived yet."""
    m = _STREAM_END.search(text)
    return m.end() if m else None


def normalise(text: str, *, fold_case: bool = True) -> str:
    """``text`` without whitespace, punctuation, symbols or underscores, lower-cased: what
    character matching compares (typos aside, "退货 怎么办？" is "退货怎么办").

    ``fold_case=False`` keeps the case: the "asks for a person" check looks for the
    configured HANDOFF_KEYWORDS as they are written, and always has.
    """
    kept = _NOISE.sub("", text)
    return kept.lower() if fold_case else kept
