"""Text from outside, checked against what the database can hold.

PostgreSQL refuses two things a Python string can carry: NUL (U+0000, not allowed in a
text value) and unpaired surrogates (U+D800-U+DFFF, which cannot be encoded as UTF-8;
JSON's ``"\\ud800"`` produces one). Either reaching a query fails the whole request with a
database error, so the edges of the service refuse them first with a message naming the
field. Identifiers longer than their column are shortened here, stably, so that the same
long value always gives the same stored key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """What in ``text`` the database would refuse, in words, or None when it can be stored."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    char = found.group()
    kind = "a NUL character" if char == "\x00" else "an unpaired surrogate"
    return f"{kind} (U+{ord(char):04X}) at position {found.start()}"


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(where, text) for every string in a JSON value, keys included (no recursion: a
    deeply nested body cannot exhaust the stack)."""
    stack = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, dict):
            for key, child in item.items():
                name = f"{where}.{key}" if where else str(key)
                yield name, str(key)
                stack.append((name, child))
        elif isinstance(item, list):
            stack.extend((f"{where}[{idx}]", child) for idx, child in enumerate(item))


def find_unstorable(value: Any, where: str = "") -> str | None:
    """A message naming the first string in ``value`` (a str, or a JSON value of dicts and
    lists) that the database would refuse, or None when every string can be stored.
    ``where`` names ``value`` itself (default: "the text"); nested strings are named by
    their field ("the field 'messages[0].content'")."""
    for path, text in _strings(value, where):
        problem = unstorable(text)
        if problem is not None:
            shown = _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", path[:80])
            label = (where or "the text") if path == where else f"the field '{shown}'"
            return f"{label} contains {problem}, which cannot be stored; remove it and retry"
    return None


def fit(value: str, length: int) -> str:
    """``value`` itself when it has at most ``length`` characters; otherwise its start and a
    hash of the whole, ``length`` characters in all: distinct values stay distinct and the
    same value always gives the same result (dedup keys, document ids)."""
    if len(value) <= length:
        return value
    digest = hashlib.sha1(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{value[: length - 17]}~{digest}"
