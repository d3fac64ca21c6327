"""API keys for Dify and other machine clients: created and revoked by admins, stored hashed.

A key is shown once, at creation. The database holds only its SHA-256: a leaked database
does not leak usable keys, and a lookup is one indexed equality (no per-key comparison).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import select

from app.extensions import db
from app.store import ApiKey

KEY_PREFIX = "wxcs_"
_PREFIX_SHOWN = 12


class ApiKeyError(ValueError):
    """A request an admin can fix (unknown key, empty name); the message says how."""


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
        raise ApiKeyError(f"no API key with id or prefix {ident!r} (see `flask apikey list`)")
    if len(rows) > 1:
        raise ApiKeyError(f"{ident!r} matches {len(rows)} keys: revoke by id")
    row = rows[0]
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        db.session.commit()
    return row


def verify(presented: str) -> ApiKey | None:
    """The active key matching a presented bearer token, or None."""
    if not presented or len(presented) > 256:
        return None
    row = db.session.scalar(select(ApiKey).where(ApiKey.key_sha256 == _digest(presented)))
    db.session.rollback()  # read-only: end the transaction, keep the pool connection free
    if row is None or row.revoked_at is not None:
        return None
    return row
