"""API keys for Dify and other machine clients: created and revoked by admins, stored hashed.

A key is shown once, at creation. The database holds only its SHA-256: a leaked database
does not leak usable keys, and a lookup is one indexed equality (no per-key comparison).

A process trusts a key it verified for ``API_KEY_CACHE_S`` seconds without asking the
database again: under load that lookup was a quarter of a /dify/retrieval request's time
(bench/RESULTS.md). A revocation is seen at once by the process that made it and within
that time by the others. Unknown keys are never remembered.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from datetime import UTC, datetime

from sqlalchemy import select

from app.errors import BadRequest
from app.extensions import db
from app.store import ApiKey

KEY_PREFIX = "wxcs_"
_PREFIX_SHOWN = 12
_TRUSTED_MAX = 1024

# digest -> (key id, monotonic time until which it is trusted without the database)
_trusted: dict[str, tuple[int, float]] = {}
_trusted_lock = threading.Lock()


class ApiKeyError(BadRequest, ValueError):
    """A request an admin can fix (an empty name, an ambiguous prefix); the message says
    how (400)."""


class UnknownKey(ApiKeyError):
    """No key has this id or prefix (404)."""

    status, code = 404, "not_found"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create(name: str) -> tuple[ApiKey, str]:
    """Creates a key and returns its row and the plaintext key (never stored)."""
    name = name.strip()
    if not name or len(name) > 128:
        raise ApiKeyError("give the key a name of 1-128 characters (who or what uses it)")
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, prefix=plaintext[:_PREFIX_SHOWN], key_sha256=_digest(plaintext))
    db.session.add(row)
    db.session.commit()
    return row, plaintext


def holder_name(key_id: int | None) -> str:
    """Who the audit log names for a change made with key ``key_id``: "apikey:NAME"."""
    row = db.session.get(ApiKey, key_id) if key_id is not None else None
    return f"apikey:{row.name if row is not None else key_id}"[:64]


def list_keys() -> list[ApiKey]:
    return list(db.session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke(ident: str) -> ApiKey:
    """Revokes a key by its id or its shown prefix; revoking twice is harmless."""
    ident = ident.strip()
    query = select(ApiKey).where(
        ApiKey.id == int(ident) if ident.isdigit() else ApiKey.prefix == ident
    )
    rows = list(db.session.scalars(query))
    if not rows:
        raise UnknownKey(f"no API key with id or prefix {ident!r} (see `flask apikey list`)")
    if len(rows) > 1:
        raise ApiKeyError(f"{ident!r} matches {len(rows)} keys: revoke by id")
    row = rows[0]
    with _trusted_lock:
        _trusted.clear()
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        db.session.commit()
    return row


def verify(presented: str, *, trust_s: float = 0.0) -> int | None:
    """The id of the active key matching a presented bearer token, or None. A key verified
    in the last ``trust_s`` seconds is not looked up again."""
    if not presented or len(presented) > 256:
        return None
    digest = _digest(presented)
    now = time.monotonic()
    trusted = _trusted.get(digest)
    if trusted is not None and trusted[1] > now:
        return trusted[0]
    row = db.session.scalar(select(ApiKey).where(ApiKey.key_sha256 == digest))
    db.session.rollback()  # read-only: end the transaction, keep the pool connection free
    if row is None or row.revoked_at is not None:
        with _trusted_lock:
            _trusted.pop(digest, None)
        return None
    if trust_s > 0:
        with _trusted_lock:
            if len(_trusted) >= _TRUSTED_MAX:
                _trusted.clear()
            _trusted[digest] = (row.id, now + trust_s)
    return row.id
