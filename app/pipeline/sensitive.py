"""The sensitive-word filter: words the service must never send, masked in every answer.

The list is a UTF-8 text file, one word per line (``#`` starts a comment), named by
SENSITIVE_WORDS_FILE, so operators maintain it without a release. Words are matched
case-insensitively, longest first, and replaced by as many ``*``.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path


class SensitiveWordFilter:
    def __init__(self, words: list[str]) -> None:
        unique = sorted({w.strip() for w in words if w.strip()}, key=len, reverse=True)
        self.words = unique
        self.longest = len(unique[0]) if unique else 0
        self._pattern = (
            re.compile("|".join(re.escape(w) for w in unique), re.IGNORECASE) if unique else None
        )

    @classmethod
    def from_file(cls, path: Path) -> SensitiveWordFilter:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
        return cls([ln.split("#", 1)[0] for ln in lines])

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda m: "*" * len(m.group()), text)

    def found(self, text: str) -> list[str]:
        return [m.group() for m in self._pattern.finditer(text)] if self._pattern else []


NO_FILTER = SensitiveWordFilter([])
_cache: dict[tuple[str, float], SensitiveWordFilter] = {}
_lock = threading.Lock()


def load_filter(path: Path | None) -> SensitiveWordFilter:
    """The filter for ``path``, read again only when the file changes."""
    if path is None:
        return NO_FILTER
    key = (str(path), path.stat().st_mtime)
    with _lock:
        filt = _cache.get(key)
        if filt is None:
            _cache.clear()
            filt = _cache[key] = SensitiveWordFilter.from_file(path)
        return filt
