"""Calls to the 微信客服 (kf) API, all through KF_API_BASE_URL so an outbound proxy or the
simulator can stand in.

The token is WeCom's ``gettoken`` with the CorpID and the 微信客服 Secret (not a
self-built app's), held like every other token: one row for all processes, refreshed once
per storm (app/channels/wechat/tokens.py). Errors and retries are WeCom's rules
(app/channels/wecom/api.py): -1 and token errors are retried a bounded number of times,
everything else is permanent, 95018 (a person holds the session) above all: retrying it
only loops.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import requests

from app.channels.api_client import Media, TokenAPIClient, WeChatAPIError
from app.channels.kf import CHANNEL
from app.channels.wechat.tokens import TokenHolder
from app.channels.wecom.api import RETRYABLE_ERRORS, TOKEN_ERRORS
from app.extensions import db
from app.settings import Settings
from app.store import InboundMessage

SYNC_MSG = "/cgi-bin/kf/sync_msg"
SEND_MSG = "/cgi-bin/kf/send_msg"
SEND_MSG_ON_EVENT = "/cgi-bin/kf/send_msg_on_event"
STATE_GET = "/cgi-bin/kf/service_state/get"
STATE_TRANS = "/cgi-bin/kf/service_state/trans"

#: kf/send_msg's text.content: at most this many bytes.
TEXT_LIMIT_BYTES = 2048
#: Replies per customer message (within 48 hours of it); a sixth is 95001.
REPLIES_PER_MESSAGE = 5

#: The errcodes this channel acts on (docs/kf-contract.md says where each is documented).
INVALID_OPEN_KFID = 95000
SEND_COUNT_LIMIT = 95001  # a sixth reply to one customer message
SEND_TIME_LIMIT = 95002  # more than 48 hours after the customer's last message
SESSION_STATE_INVALID = 95018  # send_msg while the session is not the bot's (2, 3, 4)
INVALID_CODE = 95007  # a used or expired code or sync token (assumed; docs/kf-contract.md)
RATE_LIMITED = 45009  # WeCom's frequency limit: sync_msg without a token meets it soonest


class Origin(IntEnum):
    """sync_msg's ``origin``: who a message came from."""

    CUSTOMER = 3  # the WeChat customer
    SYSTEM = 4  # an event WeChat pushes (enter_session, session_status_change, ...)
    SERVICER = 5  # a servicer in the WeCom client (and, some say, the API's own replies)


class ServiceState(IntEnum):
    """A session's state (kf/service_state/get and /trans)."""

    UNTREATED = 0  # new: the API may reply, queue it or give it to a servicer
    BOT = 1  # 由智能助手接待: the API replies
    QUEUED = 2  # 待接入池排队中: waiting for a person
    HUMAN = 3  # 由人工接待: a person holds it; send_msg answers 95018
    ENDED = 4  # ended, or not begun (the customer entered but wrote nothing)


#: States in which the bot answers with kf/send_msg.
BOT_STATES = frozenset({ServiceState.UNTREATED, ServiceState.BOT})


@dataclass(frozen=True)
class SyncPage:
    next_cursor: str
    has_more: bool
    msg_list: list[dict[str, Any]]


@dataclass(frozen=True)
class Session:
    state: ServiceState
    servicer_userid: str = ""

    @property
    def bot_may_reply(self) -> bool:
        return self.state in BOT_STATES

    @property
    def person_holds(self) -> bool:
        """A servicer holds it (3), or the customer waits in the queue for one (2)."""
        return self.state in (ServiceState.HUMAN, ServiceState.QUEUED)


class KfAPI(TokenAPIClient):
    token_errors = TOKEN_ERRORS
    retryable_errors = RETRYABLE_ERRORS

    def __init__(self, settings: Settings, session: requests.Session | None = None) -> None:
        super().__init__(
            settings.kf_api_base_url,
            timeout=settings.wechat_http_timeout_s,
            retries=settings.wechat_send_retries,
            session=session,
        )
        self.corp_id = settings.kf_corp_id
        self.secret = settings.kf_secret
        self.tokens = TokenHolder(
            token_key(self.corp_id), self._fetch_token, settings.data_dir / "locks"
        )

    def _fetch_token(self, force_refresh: bool) -> tuple[str, int]:
        # WeCom's gettoken has no force flag: a "forced" refresh is the same request.
        data = self._request(
            "GET", "/cgi-bin/gettoken", params={"corpid": self.corp_id, "corpsecret": self.secret}
        )
        return data["access_token"], int(data.get("expires_in", 7200))

    # --- reading ----------------------------------------------------------------------

    def sync_msg(
        self,
        open_kfid: str,
        *,
        cursor: str = "",
        token: str = "",
        limit: int = 1000,
        voice_format: int = 0,
    ) -> SyncPage:
        """One page of the account's messages after ``cursor`` ("" : the last 3 days).

        ``token`` is the callback's Token (valid 10 minutes; without one WeChat limits the
        call strictly). An empty ``msg_list`` with ``has_more`` is possible: only
        ``has_more`` says whether to go on."""
        payload: dict[str, Any] = {
            "cursor": cursor,
            "limit": limit,
            "voice_format": voice_format,
            "open_kfid": open_kfid,
        }
        if token:
            payload["token"] = token
        data = self.call(SYNC_MSG, payload)
        msg_list = data.get("msg_list") or []
        if not isinstance(msg_list, list):
            raise WeChatAPIError(None, "sync_msg: msg_list is not a list", retryable=False)
        return SyncPage(
            next_cursor=str(data.get("next_cursor") or ""),
            has_more=bool(int(data.get("has_more") or 0)),
            msg_list=[m for m in msg_list if isinstance(m, dict)],
        )

    # --- sending ----------------------------------------------------------------------

    def send_msg(self, touser: str, open_kfid: str, content: str, *, msgid: str = "") -> str:
        """One text to a customer (external_userid) from the account; WeChat's msgid back.
        Only in states 0 and 1 (95018 otherwise), at most 5 per customer message (95001)
        and within 48 hours of it (95002): all three permanent."""
        payload: dict[str, Any] = {
            "touser": touser,
            "open_kfid": open_kfid,
            "msgtype": "text",
            "text": {"content": content},
        }
        if msgid:
            payload["msgid"] = msgid
        return str(self.call(SEND_MSG, payload).get("msgid", ""))

    def send_msg_on_event(self, code: str, content: str, *, msgid: str = "") -> str:
        """A text sent with an event's code: enter_session's ``welcome_code`` (20 s, once),
        or the ``msg_code`` service_state/trans returned."""
        payload: dict[str, Any] = {"code": code, "msgtype": "text", "text": {"content": content}}
        if msgid:
            payload["msgid"] = msgid
        return str(self.call(SEND_MSG_ON_EVENT, payload).get("msgid", ""))

    # --- sessions ---------------------------------------------------------------------

    def service_state(self, open_kfid: str, external_userid: str) -> Session:
        data = self.call(STATE_GET, {"open_kfid": open_kfid, "external_userid": external_userid})
        try:
            state = ServiceState(int(data.get("service_state", -1)))
        except ValueError:
            raise WeChatAPIError(
                None, f"unknown service_state {data.get('service_state')!r}", retryable=False
            ) from None
        return Session(state, str(data.get("servicer_userid") or ""))

    def trans_service_state(
        self,
        open_kfid: str,
        external_userid: str,
        state: ServiceState,
        servicer_userid: str = "",
    ) -> str:
        """Moves the session to ``state`` (3 needs ``servicer_userid``); returns the
        ``msg_code`` for send_msg_on_event ("" when WeChat gives none)."""
        payload: dict[str, Any] = {
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            "service_state": int(state),
        }
        if servicer_userid:
            payload["servicer_userid"] = servicer_userid
        return str(self.call(STATE_TRANS, payload).get("msg_code") or "")


def token_key(corp_id: str) -> str:
    """The shared token's row key (access_tokens.app_id): the kf Secret's own token."""
    return f"kf:{corp_id}"


class KfChannel:
    """The kf API as answering sees a channel (app/channels ``ChannelAPI``).

    A reply goes to the customer through the 微信客服 account they wrote to
    (InboundMessage.account), given or looked up. Before the first text to a customer the
    session is read once: while a person holds it or the customer waits for one, the bot
    stays silent, as a permanent WeChatAPIError 95018 (recorded, never retried) instead
    of a send WeChat would refuse.

    Beyond ``ChannelAPI``: ``hand_over``, which answering calls after a refusal (the bot
    could not help): the session goes to people (app/channels/kf/handoff.py)."""

    def __init__(
        self,
        settings: Settings,
        api: KfAPI | None = None,
        *,
        open_kfid: str = "",
        check_state: bool = True,
    ) -> None:
        self.settings = settings
        self.api = api or KfAPI(settings)
        self.open_kfid = open_kfid
        self.check_state = check_state
        self._cleared: set[tuple[str, str]] = set()

    def send_text(self, customer: str, content: str, /) -> None:
        open_kfid = self.open_kfid or account_of(customer)
        if self.check_state and (open_kfid, customer) not in self._cleared:
            session = self.api.service_state(open_kfid, customer)
            if not session.bot_may_reply:
                raise WeChatAPIError(
                    SESSION_STATE_INVALID,
                    f"not sent: the session is in service_state {int(session.state)} "
                    f"({session.state.name.lower()}), not the bot's",
                    retryable=False,
                )
            self._cleared.add((open_kfid, customer))
        self.api.send_msg(customer, open_kfid, content)

    def typing(self, customer: str, on: bool = True, /) -> None:
        """微信客服 has no typing indicator; kept so senders are interchangeable."""

    def download_media(self, media_id: str, max_bytes: int, /) -> Media:
        return self.api.download_media(media_id, max_bytes)

    def hand_over(self, customer: str, /, *, reason: str, summary: str = "") -> None:
        """Moves the customer's session to people and records it for the staff (after the
        bot's last words: once moved, kf/send_msg is refused)."""
        from app.channels.kf.handoff import hand_off

        open_kfid = self.open_kfid or account_of(customer)
        hand_off(self.api, self.settings, open_kfid, customer, reason=reason, summary=summary)
        self._cleared.discard((open_kfid, customer))


def account_of(customer: str) -> str:
    """The open_kfid the customer last wrote to (their latest stored kf message's account)."""
    found = db.session.scalars(
        db.select(InboundMessage.account)
        .where(InboundMessage.channel == CHANNEL, InboundMessage.customer == customer)
        .order_by(InboundMessage.id.desc())
        .limit(1)
    ).first()
    if not found:
        raise WeChatAPIError(
            INVALID_OPEN_KFID, f"no 微信客服 account known for {customer}", retryable=False
        )
    return found
