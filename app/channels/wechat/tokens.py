"""The one WeChat access token all processes share.

Fetching a token invalidates the previous one after five minutes, so web processes and
workers refreshing on their own would clobber each other. Here the token lives in the
database; a refresh happens under a cross-process lock and only if the token the
caller saw fail is still the current one, so a storm of 40001 costs one refresh; and a
forced refresh keeps to WeChat's rule (``may_force``) however long the storm goes on.
"""

from __future__ import annotations

import fcntl
import logging
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import text

from app.extensions import db
from app.store import AccessToken

log = logging.getLogger(__name__)

#: Refresh this long before WeChat's expiry so no request carries a dying token.
EXPIRY_MARGIN = timedelta(seconds=300)

Fetcher = Callable[[bool], tuple[str, int]]  # force_refresh -> (token, expires_in)


#: WeChat's stable_token ignores a forced refresh sooner than this after the last one...
FORCE_MIN_INTERVAL = timedelta(seconds=30)
#: ...and allows this many a day (its quota resets at midnight, Beijing time).
FORCE_PER_DAY = 20
_BEIJING = timezone(timedelta(hours=8))


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _beijing_day(dt: datetime | None) -> date | None:
    return _aware(dt).astimezone(_BEIJING).date() if dt is not None else None


def may_force(row: AccessToken, now: datetime) -> bool:
    """Whether a forced refresh is within WeChat's rule: 30 s after the last one across
    every process (the row is read under the refresh lock), and 20 a day. A storm of
    40001 for a token WeChat keeps handing out forced 27 refreshes in 17 s before."""
    if row.forced_at is None:
        return True
    if now - _aware(row.forced_at) < FORCE_MIN_INTERVAL:
        return False
    return _beijing_day(row.forced_at) != _beijing_day(now) or row.forced_today < FORCE_PER_DAY


class TokenHolder:
    def __init__(self, app_id: str, fetch: Fetcher, lock_dir: Path) -> None:
        self.app_id = app_id
        self._fetch = fetch
        self._lock_dir = lock_dir
        # refreshed_at of the row each token handed out came from: a refresh by another
        # process can return the very same token (stable_token does until shortly before
        # expiry), so the token alone cannot tell whether someone refreshed meanwhile.
        self._seen: dict[str, datetime] = {}

    def get(self) -> str:
        row = db.session.get(AccessToken, self.app_id)
        if row is not None and self._fresh(row):
            self._seen[row.token] = row.refreshed_at
            return row.token
        # Read the expiring row before the rollback: that expires `row`, and reading it
        # afterwards could return a token another process has just refreshed, which
        # _refresh would then take for the stale one and force-refresh for nothing.
        stale = (row.token, row.refreshed_at) if row is not None else (None, None)
        db.session.rollback()
        return self._refresh(*stale)

    def invalidate(self, token: str) -> str:
        """WeChat rejected `token`: returns a working one, refreshing at most once."""
        return self._refresh(token, self._seen.get(token))

    def _fresh(self, row: AccessToken) -> bool:
        return bool(row.token) and _aware(row.expires_at) - EXPIRY_MARGIN > datetime.now(UTC)

    def _refresh(self, stale: str | None, seen_refreshed_at: datetime | None) -> str:
        with self._lock():
            db.session.expire_all()
            row = db.session.get(AccessToken, self.app_id)
            if (
                row is not None
                and self._fresh(row)
                and (
                    row.token != stale
                    or (seen_refreshed_at is not None and row.refreshed_at != seen_refreshed_at)
                )
            ):
                # Another process refreshed while we waited, perhaps to the same token.
                self._seen[row.token] = row.refreshed_at
                return row.token
            # stable_token returns the same token until shortly before expiry; force only
            # when WeChat itself rejected the one it keeps handing out.
            token, expires_in = self._fetch(False)
            now = datetime.now(UTC)
            if stale is not None and token == stale and row is not None and self._fresh(row):
                if not may_force(row, now):
                    # Forcing again would only spend WeChat's 20 a day: the caller's try
                    # fails, and the answer is retried later with the token then current.
                    log.warning(
                        "WeChat rejected the access token of %s again; not forcing another "
                        "refresh (last forced %s, %d today)",
                        self.app_id,
                        row.forced_at,
                        row.forced_today,
                    )
                    db.session.rollback()
                    return token
                token, expires_in = self._fetch(True)
                today = _beijing_day(row.forced_at) == _beijing_day(now)
                row.forced_today = (row.forced_today or 0) + 1 if today else 1
                row.forced_at = now
            if row is None:
                row = AccessToken(app_id=self.app_id)
                db.session.add(row)
            row.token = token
            row.expires_at = now + timedelta(seconds=expires_in)
            row.refreshed_at = now
            db.session.commit()
            self._seen[token] = row.refreshed_at
            log.info("refreshed WeChat access token for %s", self.app_id)
            return token

    @contextmanager
    def _lock(self) -> Iterator[None]:
        if db.engine.url.get_backend_name() == "postgresql":
            key = zlib.crc32(f"wechat-token:{self.app_id}".encode())
            with db.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
        else:  # SQLite: one machine, so a file lock spans all its processes
            self._lock_dir.mkdir(parents=True, exist_ok=True)
            with open(self._lock_dir / f"token-{self.app_id}.lock", "w") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
