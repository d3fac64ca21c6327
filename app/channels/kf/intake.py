"""The 微信客服 channel's glue to app/messages and the workers: what becomes of each message
a sync hands over (``Taker``, the ``take`` of sync.py); a sync as the Celery task
``sync_kf`` runs it (``sync``) and when it is retried (``retry_after``); queueing one
(``enqueue_sync``, the callback's ``ENQUEUE``).

- ``enter_session``: stored (ignored) and, the first time, greeted at once with its
  ``welcome_code`` (valid 20 s, once: handoff.welcome).
- A customer's message while a person holds the session, or the customer waits for one:
  stored as handed off; nothing queued, no reply (the person answers; send_msg would be
  refused with 95018).
- Otherwise the shared intake (app/messages/intake.py ``take_in``): stored once by msgid,
  admitted, the answer queued for a worker. A fixed reply (a location, a link, the rate
  limit's notice...) goes out through kf/send_msg here; a customer who asks for a person
  is handed over (service_state/trans) and recorded for the staff.

Idempotent: a message stored before (a killed reader's page taken in again, WeChat's own
repeats) is left alone before any call to WeChat. A per-message error that will not go
away (a malformed message, WeChat refusing a reply) is logged and swallowed: raised, it
would leave the page pending, taken in again at every sync. Errors a retry may cure (the
database or WeChat briefly down) are raised: the sync is retried and resumes the page.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

from app.channels.api_client import WeChatAPIError
from app.channels.kf import CHANNEL, cursor, fields, handoff
from app.channels.kf import sync as kf_sync
from app.channels.kf.api import INVALID_CODE, RATE_LIMITED, KfAPI
from app.channels.wechat.security import CallbackRejected
from app.conversations import handoffs
from app.extensions import db
from app.messages import inbound, intake
from app.messages.routing import route
from app.settings import Settings
from app.store import AnswerOutcome, KfCursor, MessageStatus

log = logging.getLogger(__name__)

#: sync_msg's token lasts 10 minutes from the callback: a retry that would run later than
#: this after it goes without (rate-limited by WeChat, but not refused).
TOKEN_USABLE_S = 540


class Taker:
    """Takes in the messages of one account's sync, one at a time (``take(msg)``)."""

    def __init__(self, api: KfAPI, settings: Settings) -> None:
        self.api = api
        self.settings = settings

    def __call__(self, msg: dict[str, Any]) -> None:
        msgid = str(msg.get("msgid") or "")[:64]
        try:
            self._take(msg)
        except WeChatAPIError as exc:
            if exc.retryable:
                raise
            log.warning("kf: message %s: WeChat refused a call for it: %s", msgid, exc)
        except (CallbackRejected, intake.Unanswerable) as exc:
            log.warning("kf: message %s not taken in: %s", msgid, exc)

    def _take(self, msg: dict[str, Any]) -> None:
        accepted = intake.accepted_fields(fields.to_fields(msg))
        decision = route(accepted, self.settings)
        incoming = intake.incoming_from(CHANNEL, accepted, decision)
        known = inbound.find(CHANNEL, incoming.dedup_key) is not None
        inbound.done_reading()
        if known:
            return
        account, customer = incoming.account, incoming.customer
        if fields.event_type(msg) == "enter_session":
            if intake.take_in(CHANNEL, accepted, self.settings).message_id is not None:
                handoff.welcome(self.api, self.settings, fields.welcome_code(msg))
            return
        if incoming.msg_type.startswith("event:"):
            intake.take_in(CHANNEL, accepted, self.settings)  # stored, ignored
            return
        session = self.api.service_state(account, customer)
        if session.person_holds:
            # The person answers: kept for the record (and the staff's pages) only.
            inbound.record(
                incoming,
                status=MessageStatus.HANDOFF,
                outcome=AnswerOutcome.HANDED_OFF,
                outcome_detail=json.dumps({"via": "with people", "state": int(session.state)}),
            )
            return
        taken = intake.take_in(CHANNEL, accepted, self.settings, instant=False)
        if taken.message_id is None:
            return  # stored meanwhile: a repeat
        if taken.decision.action == "reply" and taken.decision.text:
            self.api.send_msg(customer, account, taken.decision.text)
        elif taken.decision.action == "handoff":
            handoff.hand_off(
                self.api,
                self.settings,
                account,
                customer,
                reason=handoffs.ASKED_FOR_PERSON,
                summary=taken.decision.text,
            )


def sync(settings: Settings, open_kfid: str, token: str) -> int:
    """Reads the account's new messages and takes each in (the Celery task ``sync_kf``);
    returns how many were taken in. Raises what ``retry_after`` judges."""
    if not settings.kf_configured:
        log.warning("kf sync of %s dropped: 微信客服 is not configured (KF_TOKEN)", open_kfid)
        return 0
    api = KfAPI(settings)
    result = kf_sync.sync_account(
        api,
        open_kfid,
        Taker(api, settings),
        token=token,
        lock_dir=settings.data_dir / "locks",
        limit=settings.kf_sync_limit,
        wait_s=settings.kf_sync_wait_s,
    )
    return len(result.taken)


@dataclass(frozen=True)
class Again:
    """A failed sync, tried again in ``countdown`` seconds with ``token``."""

    countdown: float
    token: str


def retry_after(
    exc: Exception,
    open_kfid: str,
    token: str,
    *,
    queued_at: float,
    retries: int,
    backoff_s: float,
) -> Again | None:
    """What to do after a sync raised ``exc``: None (logged) when no retry can help.

    Another reader: shortly, since this notification may be of messages it has not seen.
    A token WeChat refuses (expired): at once, without it. Without a token and
    rate-limited: not at all, the next callback or beat's next round reads. WeChat busy,
    rate-limited, the database or the network down: backing off (``backoff_s``, doubling,
    at most 300 s). A retry later than the token lasts (10 minutes after the callback)
    goes without it. Anything else WeChat refuses is permanent (a wrong open_kfid...)."""
    if isinstance(exc, cursor.ReaderBusy):
        log.info("kf sync of %s: %s; again shortly", open_kfid, exc)
        return _again(1 + random.random(), token, queued_at)
    backoff = min(backoff_s * 2**retries, 300)
    if isinstance(exc, WeChatAPIError):
        if token and exc.errcode == INVALID_CODE:
            log.warning("kf sync of %s: the token was refused (%s); without it", open_kfid, exc)
            return Again(1, "")
        if exc.errcode == RATE_LIMITED and not token:
            log.info("kf sync of %s without a token rate-limited (%s)", open_kfid, exc)
            return None
        if not (exc.retryable or exc.errcode == RATE_LIMITED):
            log.error("kf sync of %s failed for good: %s", open_kfid, exc)
            return None
    log.warning("kf sync of %s failed (%r); retry in %gs", open_kfid, exc, backoff)
    return _again(backoff, token, queued_at)


def _again(countdown: float, token: str, queued_at: float) -> Again:
    late = time.time() + countdown - queued_at > TOKEN_USABLE_S
    return Again(countdown, "" if late else token)


def known_accounts(settings: Settings) -> list[str]:
    """The accounts read so far (a cursor stored): beat's safety net reads each again."""
    if not settings.kf_configured:
        return []
    accounts = list(db.session.scalars(db.select(KfCursor.open_kfid)).all())
    db.session.commit()
    return accounts


def enqueue_sync(open_kfid: str, token: str) -> None:
    """Queues the account's sync (the Celery task ``sync_kf``, on the default queue); raises
    when the broker cannot take it, so the callback answers 503 and WeCom retries."""
    from app.tasks import sync_kf

    sync_kf.apply_async(
        (open_kfid, token),
        {"queued_at": time.time()},
        retry=True,
        retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
    )
