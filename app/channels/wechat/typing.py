"""WeChat's "typing…" indicator while the model writes an answer (async mode).

The indicator lasts 15 s on the customer's phone, so it is renewed while generation goes
on; it starts after a short delay so instant answers (FAQ hits) do not flash it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app

from app.channels import ChannelAPI
from app.extensions import db

log = logging.getLogger(__name__)

START_AFTER_S = 0.5
RENEW_EVERY_S = 12.0  # WeChat shows it for 15 s
MAX_RENEWALS = 10  # and refuses it (45080) 30 s after the customer's last message anyway
#: How long the answer waits for an indicator request still in flight (cosmetic only).
JOIN_S = 3.0


@contextmanager
def typing_indicator(api: ChannelAPI, openid: str) -> Iterator[None]:
    """Shows "typing" to ``openid`` while the block runs. Best effort: a failure (45080,
    quota, network) only stops the indicator, never the answer."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    done = threading.Event()

    def run() -> None:
        if done.wait(START_AFTER_S):
            return
        with app.app_context():  # its own database session, for the shared token
            for _ in range(MAX_RENEWALS):
                try:
                    api.typing(openid, True)
                except Exception as exc:  # noqa: BLE001 - cosmetic: log and stop
                    log.info("typing indicator for %s stopped: %s", openid, exc)
                    return
                finally:
                    # The token read took a connection: give it back until the next renewal.
                    db.session.remove()
                if done.wait(RENEW_EVERY_S):
                    return

    thread = threading.Thread(target=run, name="wechat-typing", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        # An indicator still on its way should not land after the answer; but the answer
        # never waits long for a cosmetic call (a slow token refresh, a stalled network).
        thread.join(timeout=JOIN_S)
