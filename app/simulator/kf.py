"""微信客服's (WeCom ``kf`` API) servers for one company, in memory: the customers' side
(they write, enter, get served by people) and the API our service calls.

Point KF_API_BASE_URL at ``serve_in_thread(create_kf_simulator_app(sim))`` (kf_server.py);
the API's endpoints are kf_rules.py's, the state and the customers' side here.
The rules follow WeCom's kf documentation (docs/kf-contract.md says where each is from):

- Every customer message, servicer message (origin 5) and system event (origin 4) is
  appended to its account's log; each append leaves a notification (a sync ``token``
  valid 10 minutes) for the callback (``take_notifications``; kf_callback.py posts it).
- ``kf/sync_msg`` pages through the log from a cursor (opaque, issued per page, per
  account): at most ``limit`` (≤ 1000) and at most ``page_size`` a page, ``has_more``
  while the log goes on; an empty cursor starts 3 days back. Without a token the call is
  rate-limited (45009). ``empty_pages`` makes the next pages empty with ``has_more`` 1,
  as WeCom does; ``repeat`` re-appends an old message (WeCom's phantom repeats); a
  message may carry an earlier ``send_time`` than the one before it (out of order).
- ``kf/send_msg``: only in service states 0 and 1 (else 95018), within 48 hours of the
  customer's last message (95002), 5 replies per customer message (95001); a first
  reply in state 0 moves the session to 1 (the bot's; our assumption). Our own sends are
  not in sync_msg (WeCom: not readable), unless ``echo_api_sends`` (peers report them
  as origin 5).
- ``enter_session`` carries a ``welcome_code`` when WeCom lets the API greet (no welcome in
  48 hours, the customer never wrote): 20 s, once, through ``kf/send_msg_on_event``.
- ``kf/service_state/trans`` moves only along WeCom's table (95016 otherwise); state 3
  needs a servicer on duty (95014); moving to 2, from 2 to 3, and to 4 returns a
  ``msg_code`` for send_msg_on_event (48 hours; ending: 20 s), valid only while the
  session stays in that state.
"""

from __future__ import annotations

import copy
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .kf_rules import (
    KF_ERRMSG,
    REPLIES_PER_MESSAGE,
    SYNC_LIMIT_MAX,
    SYNC_TOKEN_TTL_S,
    WELCOME_CODE_TTL_S,
    WINDOW_S,
    EventCode,
    KfEndpoints,
    KfSession,
    Notification,
)
from .wecom import ERRMSG as WECOM_ERRMSG
from .wecom import WeComAPISimulator

DEMO_OPEN_KFID = "wkSimDemoAccount000000000000001"


class KfSimulator(KfEndpoints, WeComAPISimulator):
    """微信客服 for one company (``corp_id`` and the 微信客服 ``secret``) and its accounts.

    ``servicers``: the 接待人员 on duty (state 3 may only go to them). ``page_size``: at
    most this many messages a sync_msg page (WeCom may return fewer than asked).
    Inspection and faults are the WeChat simulator's (``sent``, ``calls``, ``inject``...);
    a ``sent`` record has ``via`` send_msg or send_msg_on_event."""

    def __init__(
        self,
        corp_id: str,
        secret: str,
        *,
        accounts: tuple[str, ...] = (DEMO_OPEN_KFID,),
        servicers: set[str] | None = None,
        page_size: int = SYNC_LIMIT_MAX,
        echo_api_sends: bool = False,
        token_ttl: int = 7200,
        clock: Callable[[], float] = time.time,
        with_rid: bool = False,
    ) -> None:
        self.accounts = tuple(accounts)
        self.servicers = set(servicers or ())
        self.page_size = page_size
        self.echo_api_sends = echo_api_sends
        super().__init__(corp_id, secret, 0, token_ttl=token_ttl, clock=clock, with_rid=with_rid)

    def _init_state(self) -> None:
        super()._init_state()
        self._log: dict[str, list[dict[str, Any]]] = {a: [] for a in self.accounts}
        self._cursors: dict[str, tuple[str, int]] = {}
        self._sync_tokens: dict[str, tuple[str, float]] = {}
        self._untokened: dict[str, deque[float]] = {a: deque() for a in self.accounts}
        self._sessions: dict[tuple[str, str], KfSession] = {}
        self._codes: dict[str, EventCode] = {}
        self._notifications: list[Notification] = []
        self._empty_pages = 0
        self._pages_served = 0
        self._sync_requests: list[dict[str, Any]] = []

    @property
    def default_account(self) -> str:
        return self.accounts[0]

    def error(self, errcode: int, errmsg: str | None = None) -> dict[str, Any]:
        if errmsg is None and errcode in KF_ERRMSG and errcode not in WECOM_ERRMSG:
            errmsg = KF_ERRMSG[errcode]
            if self.with_rid:
                errmsg += f", hint: [{int(self.clock())}{secrets.randbelow(10**12)}]"
        return super().error(errcode, errmsg)

    # --- inspection ---------------------------------------------------------------

    def messages(self, open_kfid: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._log[open_kfid or self.default_account])

    def session(self, external_userid: str, open_kfid: str | None = None) -> KfSession:
        with self._lock:
            return copy.copy(self._session(open_kfid or self.default_account, external_userid))

    @property
    def pages_served(self) -> int:
        with self._lock:
            return self._pages_served

    @property
    def sync_requests(self) -> list[dict[str, Any]]:
        """What each sync_msg asked for: open_kfid, voice_format, limit, with_token."""
        with self._lock:
            return [dict(r) for r in self._sync_requests]

    def unread(self, cursor: str, open_kfid: str | None = None) -> int:
        """How many of the account's messages come after ``cursor`` (one sync_msg issued;
        "": the whole log): 0 once a reader has read everything."""
        account = open_kfid or self.default_account
        with self._lock:
            start = self._cursors[cursor][1] if cursor else 0
            return len(self._log[account]) - start

    def take_notifications(self) -> list[Notification]:
        """The callbacks WeCom owes since the last call (one per appended message)."""
        with self._lock:
            taken, self._notifications = self._notifications, []
            return taken

    # --- the customers' and servicers' side ----------------------------------------

    def customer_sends(
        self,
        external_userid: str,
        content: str = "",
        *,
        msgtype: str = "text",
        body: dict[str, Any] | None = None,
        open_kfid: str | None = None,
        send_time: int | None = None,
    ) -> str:
        """A customer's message (origin 3); returns its msgid. Opens the session (state 0)
        if it was ended, and gives the API 5 replies for 48 hours."""
        account = open_kfid or self.default_account
        with self._changed:
            now = self.clock()
            session = self._session(account, external_userid)
            if session.state == 4:
                session.state, session.servicer = 0, ""
            session.replies_left, session.window_until = REPLIES_PER_MESSAGE, now + WINDOW_S
            session.wrote = True
            payload = body if body is not None else {"content": content}
            msg = self._message(account, external_userid, 3, msgtype, payload, send_time)
            return self._append(account, msg)

    def customer_enters(
        self, external_userid: str, *, open_kfid: str | None = None, scene: str = ""
    ) -> str:
        """The customer opens the chat (origin 4 enter_session); returns the welcome_code,
        or "" when WeCom would offer none (welcomed in 48 hours, or the customer wrote)."""
        account = open_kfid or self.default_account
        with self._changed:
            now = self.clock()
            session = self._session(account, external_userid)
            code = ""
            recent = session.welcomed_at is not None and now - session.welcomed_at < WINDOW_S
            if not recent and not session.wrote:
                code = self._new_code("welcome", account, external_userid, WELCOME_CODE_TTL_S)
            event = {
                "event_type": "enter_session",
                "open_kfid": account,
                "external_userid": external_userid,
                "scene": scene,
                "scene_param": "",
            }
            if code:
                event["welcome_code"] = code
            self._append(account, self._event(event))
            return code

    def servicer_sends(
        self,
        external_userid: str,
        content: str,
        servicer_userid: str,
        *,
        open_kfid: str | None = None,
    ) -> str:
        """A servicer writes from the WeCom client (origin 5)."""
        account = open_kfid or self.default_account
        with self._changed:
            msg = self._message(account, external_userid, 5, "text", {"content": content}, None)
            msg["servicer_userid"] = servicer_userid
            return self._append(account, msg)

    def servicer_takes(
        self, external_userid: str, servicer_userid: str, *, open_kfid: str | None = None
    ) -> None:
        """A servicer takes the session in the WeCom client: state 3, and the
        session_status_change event (change_type 1)."""
        account = open_kfid or self.default_account
        with self._changed:
            session = self._session(account, external_userid)
            session.state, session.servicer = 3, servicer_userid
            self._append(account, self._status_event(account, external_userid, 1, servicer_userid))

    def end_session(self, external_userid: str, *, open_kfid: str | None = None) -> None:
        """A servicer ends the session: state 4, and session_status_change (change_type 3)."""
        account = open_kfid or self.default_account
        with self._changed:
            session = self._session(account, external_userid)
            old, session.state, session.servicer = session.servicer, 4, ""
            self._append(account, self._status_event(account, external_userid, 3, "", old))

    def system_event(self, event: dict[str, Any], *, open_kfid: str | None = None) -> str:
        """Any other origin 4 event (msg_send_fail, servicer_status_change, ...)."""
        account = open_kfid or self.default_account
        with self._changed:
            return self._append(account, self._event(dict(event)))

    def repeat(self, msgid: str, *, open_kfid: str | None = None) -> None:
        """WeCom hands out an old message again, same msgid ("phantom" repeats)."""
        account = open_kfid or self.default_account
        with self._changed:
            found = next(m for m in self._log[account] if m["msgid"] == msgid)
            self._append(account, copy.deepcopy(found))

    def empty_pages(self, n: int) -> None:
        """The next ``n`` sync_msg pages come back empty with has_more 1."""
        with self._lock:
            self._empty_pages = n

    # --- internals ----------------------------------------------------------------

    def _session(self, account: str, external_userid: str) -> KfSession:
        return self._sessions.setdefault((account, external_userid), KfSession())

    def _message(
        self,
        account: str,
        external_userid: str,
        origin: int,
        msgtype: str,
        payload: dict[str, Any],
        send_time: int | None,
    ) -> dict[str, Any]:
        return {
            "msgid": secrets.token_urlsafe(24),
            "open_kfid": account,
            "external_userid": external_userid,
            "send_time": int(self.clock()) if send_time is None else send_time,
            "origin": origin,
            "msgtype": msgtype,
            msgtype: dict(payload),
        }

    def _event(self, event: dict[str, Any]) -> dict[str, Any]:
        # Events carry the account and customer inside ``event`` only.
        return {
            "msgid": secrets.token_urlsafe(24),
            "send_time": int(self.clock()),
            "origin": 4,
            "msgtype": "event",
            "event": event,
        }

    def _status_event(
        self, account: str, customer: str, change_type: int, new: str, old: str = ""
    ) -> dict[str, Any]:
        return self._event(
            {
                "event_type": "session_status_change",
                "open_kfid": account,
                "external_userid": customer,
                "change_type": change_type,
                "old_servicer_userid": old,
                "new_servicer_userid": new,
            }
        )

    def _append(self, account: str, msg: dict[str, Any]) -> str:
        """Appends to the log and owes a callback (hold ``_changed``)."""
        self._log[account].append(msg)
        token = "ENC" + secrets.token_urlsafe(33)
        self._sync_tokens[token] = (account, self.clock() + SYNC_TOKEN_TTL_S)
        self._notifications.append(Notification(account, token))
        self._changed.notify_all()
        return str(msg["msgid"])

    def _new_code(
        self, kind: str, account: str, customer: str, ttl: float, *, state: int | None = None
    ) -> str:
        code = secrets.token_urlsafe(24)
        self._codes[code] = EventCode(kind, account, customer, self.clock() + ttl, state)
        return code
