"""Text from outside, made to fit what the database can hold.

Identifiers longer than their column are shortened here, stably, so that the same long
value always gives the same stored key and distinct values stay distinct.
"""

from __future__ import annotations

import hashlib


def fit(value: str, length: int) -> str:
    """``value`` itself when it has at most ``length`` characters; otherwise its start and a
    hash of the whole, ``length`` characters in all: distinct values stay distinct and the
    same value always gives the same result (dedup keys, document ids)."""
    if len(value) <= length:
        return value
    digest = hashlib.sha1(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{value[: length - 17]}~{digest}"
