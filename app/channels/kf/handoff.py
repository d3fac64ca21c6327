"""Handing a 微信客服 session to people, and knowing when people hold one.

A customer who asks for a person, or whom the bot cannot help, is moved with
kf/service_state/trans: to KF_SERVICER_USERID (state 3) when one is configured and on
duty, else to the waiting queue (state 2). The code trans returns carries one message to
the customer (KF_HANDOFF_REPLY) through send_msg_on_event, since send_msg is refused
(95018) once the session is no longer the bot's. While a person holds the session, or
the customer waits for one, the bot stays silent: ``person_holds``. ``hand_off`` also
records the hand-off in the staff's inbox (HandoffRequest, source "kf"), once per session.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.channels.api_client import WeChatAPIError
from app.channels.kf import CHANNEL
from app.channels.kf.api import KfAPI, ServiceState
from app.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HandOver:
    #: The session's state afterwards.
    state: ServiceState
    #: False: it was with people already (or ended), and was left as it was.
    moved: bool
    #: The customer was told KF_HANDOFF_REPLY.
    told: bool = False


def person_holds(api: KfAPI, open_kfid: str, external_userid: str) -> bool:
    """A servicer holds the session (3) or the customer waits in the queue for one (2):
    the bot must not reply (send_msg would answer 95018)."""
    return api.service_state(open_kfid, external_userid).person_holds


def hand_over(api: KfAPI, settings: Settings, open_kfid: str, external_userid: str) -> HandOver:
    """Moves the session to people; a configured servicer who cannot take it (not on duty,
    not a servicer of the account: permanent errors) leaves it to the queue instead."""
    session = api.service_state(open_kfid, external_userid)
    if session.person_holds or session.state == ServiceState.ENDED:
        # ENDED: the API may not move an ended session; the customer's next message
        # opens a new one (state 0), which is handed over then.
        return HandOver(session.state, moved=False)
    servicer = settings.kf_servicer_userid
    target = ServiceState.HUMAN if servicer else ServiceState.QUEUED
    try:
        code = api.trans_service_state(open_kfid, external_userid, target, servicer)
    except WeChatAPIError as exc:
        if target != ServiceState.HUMAN or exc.retryable:
            raise
        log.warning("kf: servicer %s cannot take the session (%s); queued instead", servicer, exc)
        target = ServiceState.QUEUED
        code = api.trans_service_state(open_kfid, external_userid, target)
    return HandOver(target, moved=True, told=_tell(api, code, settings.kf_handoff_reply))


def hand_off(
    api: KfAPI,
    settings: Settings,
    open_kfid: str,
    external_userid: str,
    *,
    reason: str,
    summary: str = "",
) -> HandOver:
    """``hand_over``, and the hand-off recorded for the staff (``record_request``)."""
    moved = hand_over(api, settings, open_kfid, external_userid)
    record_request(open_kfid, external_userid, reason=reason, summary=summary)
    log.info(
        "kf %s: %s handed to people (%s): service_state %d",
        open_kfid,
        external_userid,
        reason,
        int(moved.state),
    )
    return moved


def record_request(open_kfid: str, external_userid: str, *, reason: str, summary: str) -> int:
    """The staff's record of a session handed to people, in their hand-off inbox
    (app/conversations/handoffs.py: source "kf", the account as its conversation; one per
    customer and account until the staff close it)."""
    from app.conversations import handoffs

    return handoffs.record(CHANNEL, external_userid, open_kfid, reason, summary)


def _tell(api: KfAPI, code: str, text: str) -> bool:
    if not code or not text:
        return False
    try:
        api.send_msg_on_event(code, text)
    except WeChatAPIError as exc:  # the hand-over stands; only the courtesy text is lost
        log.warning("kf: hand-off reply not sent: %s", exc)
        return False
    return True


def welcome(api: KfAPI, settings: Settings, code: str) -> bool:
    """Greets a customer who entered the session, with enter_session's ``welcome_code``
    (valid 20 s, once: never retried later). False when there was nothing to send or
    WeChat refused it."""
    if not code or not settings.kf_welcome:
        return False
    try:
        api.send_msg_on_event(code, settings.kf_welcome)
    except WeChatAPIError as exc:
        log.warning("kf: welcome not sent: %s", exc)
        return False
    return True
