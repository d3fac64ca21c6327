"""Password guessing against staff sign-in, slowed without locking the real user out.

Failures are counted per (username, client address) pair: after LOGIN_FREE_FAILURES, each
further try of that pair must wait 1 s, then 2, 4, ... up to LOGIN_BACKOFF_MAX_S after its
last failure. Only the guessing pair waits: the same person from another address, a
colleague behind the same proxy (another username), and a correct password from an
address that has not been failing all sign in at once. A username failing from many
addresses (LOGIN_USER_MAX_FAILURES in the window: distributed guessing) loses its free
tries, so each of those addresses waits from its first failure; addresses that have not
failed are still let in. IPv6 clients are keyed by their /64, which one host can fill.

A try of a pair that has failed before is counted before its password is checked, so
concurrent tries cannot all pass the same gate; a correct password clears the pair.
"""

from __future__ import annotations

import ipaddress
import math
import time
from dataclasses import dataclass

from app.safety.ratelimit import FailureLog, WindowCounter
from app.settings import Settings


def backoff_s(failures: int, free: int, max_s: int) -> float:
    """How long after its last failure a pair with ``failures`` may try again."""
    if failures < free:
        return 0.0
    return float(min(max_s, 2 ** min(failures - free, 32)))


def client_key(address: str | None) -> str:
    """The address a pair is keyed on: IPv4 as is, IPv6 by its /64 (one host's share)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass
class Attempt:
    """One sign-in try: refused if ``wait_s`` > 0, else report how it went."""

    wait_s: float
    _gate: SignInGate
    _pair: str
    _user: str
    _counted: bool
    _now: float

    def failed(self) -> None:
        gate, window = self._gate, self._gate.settings.login_failure_window_s
        if not self._counted:
            gate.failures.hit(self._pair, window, self._now)
        gate.per_user.hit(self._user, window, self._now)

    def succeeded(self) -> None:
        if self._counted:
            self._gate.failures.clear(self._pair)

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.wait_s))


class SignInGate:
    """The throttle over shared stores (Redis, or the database without it)."""

    def __init__(self, settings: Settings, failures: FailureLog, per_user: WindowCounter) -> None:
        self.settings, self.failures, self.per_user = settings, failures, per_user

    def begin(self, username: str, address: str | None, now: float | None = None) -> Attempt:
        s = self.settings
        t = time.time() if now is None else now
        name = username[:64]
        pair, user = f"login:pair:{client_key(address)}|{name}", f"login:user:{name}"
        failures, last = self.failures.get(pair, s.login_failure_window_s, t)
        if failures == 0:
            return Attempt(0.0, self, pair, user, False, t)
        free = s.login_free_failures
        if self.per_user.count(user, s.login_failure_window_s, t) >= s.login_user_max_failures:
            free = 1  # under distributed guessing: no free tries for failing addresses
        delay = backoff_s(failures, free, s.login_backoff_max_s)
        wait = last + delay - t if delay else 0.0
        if wait > 0:
            return Attempt(wait, self, pair, user, False, t)
        # Counted before the password is checked: of concurrent tries, only those the
        # free tries cover (or the first) go on.
        count = self.failures.hit(pair, s.login_failure_window_s, t)
        raced = count > failures + 1  # others were counted between our read and our hit
        wait = backoff_s(count - 1, free, s.login_backoff_max_s) if raced else 0.0
        return Attempt(wait, self, pair, user, True, t)
