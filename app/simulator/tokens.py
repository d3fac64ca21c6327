"""Access-token lifetimes as WeChat enforces them.

Two isolated families exist. ``/cgi-bin/token`` issues a new token on every call
and the earlier ones stay usable only 5 more minutes, which is how independently
refreshing processes clobber each other. ``/cgi-bin/stable_token`` hands out the
same token until 5 minutes before it expires. Rejections differ by cause: a
superseded token answers 40001 ("not latest"), one that ran out its time 42001.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

#: Seconds a replaced token stays valid, and how early stable_token rotates.
GRACE_S = 300
#: stable_token ignores force_refresh repeated within this many seconds.
FORCE_REFRESH_MIN_INTERVAL_S = 30

Kind = Literal["token", "stable_token", "gettoken"]


@dataclass
class IssuedToken:
    value: str
    kind: Kind
    issued_at: float
    expires_at: float
    superseded: bool = False


class TokenStore:
    """Token bookkeeping; not locked itself, the simulator serialises calls."""

    def __init__(self, ttl: int, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self._clock = clock
        self._tokens: dict[str, IssuedToken] = {}
        self._stable: IssuedToken | None = None
        self._work: IssuedToken | None = None
        self._last_forced_at: float | None = None

    def issue(self) -> tuple[str, int]:
        """``/cgi-bin/token``: always new; every older one gets 5 more minutes at most."""
        now = self._clock()
        for tok in self._tokens.values():
            if tok.kind == "token":
                self._supersede(tok, now)
        return self._new("token", now).value, self.ttl

    def stable(self, force_refresh: bool) -> tuple[str, int]:
        """``/cgi-bin/stable_token``: reuse until 5 minutes before expiry."""
        now = self._clock()
        cur = self._stable
        if force_refresh:
            recently = (
                self._last_forced_at is not None
                and now - self._last_forced_at < FORCE_REFRESH_MIN_INTERVAL_S
            )
            if cur is not None and recently and cur.expires_at > now:
                return cur.value, int(cur.expires_at - now)
            self._last_forced_at = now
            if cur is not None:
                self._supersede(cur, now)
        elif cur is not None and now < cur.expires_at - GRACE_S:
            return cur.value, int(cur.expires_at - now)
        self._stable = self._new("stable_token", now)
        return self._stable.value, self.ttl

    def gettoken(self) -> tuple[str, int]:
        """WeCom's ``/cgi-bin/gettoken``: the same token while it is valid, then a new one."""
        now = self._clock()
        cur = self._work
        if cur is not None and now < cur.expires_at:
            return cur.value, int(cur.expires_at - now)
        self._work = self._new("gettoken", now)
        return self._work.value, self.ttl

    def check(self, value: str) -> int:
        """0 if usable, else the errcode WeChat answers for it."""
        tok = self._tokens.get(value)
        if tok is None:
            return 40001
        if self._clock() >= tok.expires_at:
            return 40001 if tok.superseded else 42001
        return 0

    def expire_all(self) -> None:
        now = self._clock()
        for tok in self._tokens.values():
            tok.expires_at = min(tok.expires_at, now)

    def all(self) -> list[IssuedToken]:
        return list(self._tokens.values())

    def _supersede(self, tok: IssuedToken, now: float) -> None:
        if tok.expires_at > now + GRACE_S:
            tok.expires_at = now + GRACE_S
            tok.superseded = True

    def _new(self, kind: Kind, now: float) -> IssuedToken:
        # Real tokens are ~136-char URL-safe strings; keep the length so storage is exercised.
        tok = IssuedToken(secrets.token_urlsafe(102), kind, now, now + self.ttl)
        self._tokens[tok.value] = tok
        return tok
