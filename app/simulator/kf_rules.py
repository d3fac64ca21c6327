"""微信客服's API rules, the endpoints our service calls (kf/sync_msg, kf/send_msg,
kf/send_msg_on_event, kf/service_state/get and /trans), as a mixin of KfSimulator (kf.py),
which holds the state they read and write. docs/kf-contract.md says where each rule and
code is from; the summary is kf.py's.
"""

from __future__ import annotations

import copy
import re
import secrets
from dataclasses import dataclass
from typing import Any

SYNC_MSG = "/cgi-bin/kf/sync_msg"
SEND_MSG = "/cgi-bin/kf/send_msg"
SEND_MSG_ON_EVENT = "/cgi-bin/kf/send_msg_on_event"
STATE_GET = "/cgi-bin/kf/service_state/get"
STATE_TRANS = "/cgi-bin/kf/service_state/trans"

SYNC_LIMIT_MAX = 1000
#: sync_msg's voice_format: 0 AMR (the default), 1 SILK.
VOICE_FORMATS = (0, 1)
TEXT_LIMIT_BYTES = 2048
REPLIES_PER_MESSAGE = 5
WINDOW_S = 48 * 3600
HISTORY_S = 3 * 24 * 3600
SYNC_TOKEN_TTL_S = 600
WELCOME_CODE_TTL_S = 20
#: sync_msg calls without a token allowed per account and minute (WeCom: "strict").
UNTOKENED_PER_MINUTE = 2

#: The errcodes of the kf API. 95000-95002 and 95018 are documented (docs/kf-contract.md);
#: 95007, 95014 and 95016 are WeCom's global list as we recall it (not confirmed here).
KF_ERRMSG: dict[int, str] = {
    40003: "invalid external userid",
    95000: "invalid open_kfid",
    95001: "send msg count limit",
    95002: "send msg time limit",
    95007: "invalid msg token or code",
    95014: "user is not a servicer or not receiving",
    95016: "invalid service state transition",
    95018: "send msg session status invalid",
}
SEND_MSGTYPES = frozenset(
    {"text", "image", "voice", "video", "file", "link", "miniprogram", "msgmenu", "location"}
)
ON_EVENT_MSGTYPES = frozenset({"text", "msgmenu"})
#: kf/service_state/trans: the states each state may move to (WeCom's table).
TRANSITIONS: dict[int, frozenset[int]] = {
    0: frozenset({1, 2, 3, 4}),
    1: frozenset({2, 3, 4}),
    2: frozenset({3}),
    3: frozenset({3, 4}),
    4: frozenset(),
}
_MSGID = re.compile(r"[0-9a-zA-Z_\-]{1,32}")


@dataclass
class KfSession:
    state: int = 4  # ended / not begun
    servicer: str = ""
    replies_left: int = 0
    window_until: float = 0.0
    welcomed_at: float | None = None
    wrote: bool = False


@dataclass
class EventCode:
    kind: str  # welcome, queue, servicer, end
    open_kfid: str
    external_userid: str
    expires_at: float
    state: int | None  # the state the session must still be in (None: any)
    used: bool = False


@dataclass(frozen=True)
class Notification:
    open_kfid: str
    token: str


class KfEndpoints:
    """The kf API's endpoints; KfSimulator supplies the state (``_log``, ``_sessions``,
    ``_codes``...) and WeCom's token checks and errors."""

    def api_sync_msg(self, access_token: str | None, body: Any) -> dict[str, Any]:
        """``POST /cgi-bin/kf/sync_msg``."""
        bad = self.check_token(access_token)
        if bad:
            return bad
        if not isinstance(body, dict):
            return self.error(40035)
        account = body.get("open_kfid")
        if account not in self._log:
            return self.error(95000)
        try:
            limit = int(body.get("limit") or SYNC_LIMIT_MAX)
        except (TypeError, ValueError):
            return self.error(40035)
        if not 1 <= limit <= SYNC_LIMIT_MAX:
            return self.error(40035, f"invalid limit {limit}, 1-1000")
        voice_format = body.get("voice_format", 0)
        if voice_format not in VOICE_FORMATS:
            return self.error(40035, f"invalid voice_format {voice_format!r}, 0 or 1")
        with self._lock:
            now = self.clock()
            self._sync_requests.append(
                {
                    "open_kfid": account,
                    "voice_format": voice_format,
                    "limit": limit,
                    "with_token": bool(body.get("token")),
                }
            )
            bad = self._check_sync_token(str(body.get("token") or ""), account, now)
            if bad:
                return bad
            given = str(body.get("cursor") or "")
            if given:
                if self._cursors.get(given, ("", 0))[0] != account:
                    return self.error(40035, "invalid cursor")
                start = self._cursors[given][1]
            else:
                log = self._log[account]
                start = next(
                    (i for i, m in enumerate(log) if m["send_time"] >= now - HISTORY_S), len(log)
                )
            self._pages_served += 1
            if self._empty_pages:
                self._empty_pages -= 1
                return self._page(account, start, [], has_more=True)
            page = self._log[account][start : start + min(limit, self.page_size)]
            end = start + len(page)
            return self._page(account, end, page, has_more=end < len(self._log[account]))

    def api_send_msg(self, access_token: str | None, body: Any) -> dict[str, Any]:
        """``POST /cgi-bin/kf/send_msg``."""
        content, msgid, bad = self._message_request(access_token, body, SEND_MSGTYPES)
        if bad:
            return bad
        account, touser = body.get("open_kfid"), body.get("touser")
        if account not in self._log:
            return self.error(95000)
        if not isinstance(touser, str) or not touser:
            return self.error(40003)
        with self._changed:
            now = self.clock()
            session = self._sessions.get((account, touser))
            if session is None or not session.wrote or now > session.window_until:
                return self.error(95002)
            if session.state not in (0, 1):
                return self.error(95018)
            if session.replies_left <= 0:
                return self.error(95001)
            session.replies_left -= 1
            session.state = 1
            self._record_sent("send_msg", body, account, touser, content, msgid, access_token)
            if self.echo_api_sends:
                msg = self._message(account, touser, 5, "text", {"content": content or ""}, None)
                self._append(account, msg)
        return {"errcode": 0, "errmsg": "ok", "msgid": msgid}

    def api_send_msg_on_event(self, access_token: str | None, body: Any) -> dict[str, Any]:
        """``POST /cgi-bin/kf/send_msg_on_event``."""
        content, msgid, bad = self._message_request(access_token, body, ON_EVENT_MSGTYPES)
        if bad:
            return bad
        if not body.get("code"):
            return self.error(40035)
        with self._changed:
            now = self.clock()
            code = self._codes.get(str(body["code"]))
            if code is None or code.used or now > code.expires_at:
                return self.error(95007)
            session = self._session(code.open_kfid, code.external_userid)
            if code.state is not None and session.state != code.state:
                return self.error(95018)
            code.used = True
            if code.kind == "welcome":
                session.welcomed_at = now
            record = self._record_sent(
                "send_msg_on_event", body, code.open_kfid, code.external_userid, content, msgid,
                access_token,
            )  # fmt: skip
            record["kind"] = code.kind
        return {"errcode": 0, "errmsg": "ok", "msgid": msgid}

    def api_service_state_get(self, access_token: str | None, body: Any) -> dict[str, Any]:
        """``POST /cgi-bin/kf/service_state/get``."""
        bad = self._state_request(access_token, body)
        if bad:
            return bad
        with self._lock:
            session = self._session(body["open_kfid"], body["external_userid"])
            return {
                "errcode": 0,
                "errmsg": "ok",
                "service_state": session.state,
                "servicer_userid": session.servicer if session.state == 3 else "",
            }

    def api_service_state_trans(self, access_token: str | None, body: Any) -> dict[str, Any]:
        """``POST /cgi-bin/kf/service_state/trans``."""
        bad = self._state_request(access_token, body)
        if bad:
            return bad
        try:
            target = int(body.get("service_state"))
        except (TypeError, ValueError):
            return self.error(40035)
        servicer = str(body.get("servicer_userid") or "")
        account, customer = body["open_kfid"], body["external_userid"]
        with self._changed:
            session = self._session(account, customer)
            if target not in TRANSITIONS.get(session.state, frozenset()):
                return self.error(95016)
            if target == 3 and servicer not in self.servicers:
                return self.error(95014 if servicer else 40035)
            before, session.state = session.state, target
            session.servicer = servicer if target == 3 else ""
            code = ""
            if target == 2 or (target == 3 and before == 2):
                code = self._new_code("queue" if target == 2 else "servicer", account, customer,
                                      WINDOW_S, state=target)  # fmt: skip
            elif target == 4:
                code = self._new_code("end", account, customer, WELCOME_CODE_TTL_S, state=4)
        return {"errcode": 0, "errmsg": "ok", "msg_code": code}

    # --- what the endpoints share ----------------------------------------------

    def _page(
        self, account: str, position: int, page: list[dict[str, Any]], *, has_more: bool
    ) -> dict[str, Any]:
        cursor = secrets.token_urlsafe(24)
        self._cursors[cursor] = (account, position)
        return {
            "errcode": 0,
            "errmsg": "ok",
            "next_cursor": cursor,
            "has_more": 1 if has_more else 0,
            "msg_list": copy.deepcopy(page),
        }

    def _check_sync_token(self, token: str, account: str, now: float) -> dict[str, Any] | None:
        if token:
            found = self._sync_tokens.get(token)
            if found is None or found[0] != account or now > found[1]:
                return self.error(95007)
            return None
        recent = self._untokened[account]
        while recent and recent[0] <= now - 60:
            recent.popleft()
        if len(recent) >= UNTOKENED_PER_MINUTE:
            return self.error(45009)
        recent.append(now)
        return None

    def _message_request(
        self, access_token: str | None, body: Any, msgtypes: frozenset[str]
    ) -> tuple[str | None, str, dict[str, Any] | None]:
        """What send_msg and send_msg_on_event check alike: the token, the body, its type
        and text, its msgid (given, or made). Returns (content, msgid, error)."""
        bad = self.check_token(access_token)
        if bad:
            return None, "", bad
        if not isinstance(body, dict):
            return None, "", self.error(40035)
        content, bad = self.checked_content(body, msgtypes)
        if bad:
            return None, "", bad
        given = body.get("msgid")
        if given in (None, ""):
            return content, secrets.token_urlsafe(16), None
        if not isinstance(given, str) or not _MSGID.fullmatch(given):
            return None, "", self.error(40035, "invalid msgid")
        return content, given, None

    def _state_request(self, access_token: str | None, body: Any) -> dict[str, Any] | None:
        bad = self.check_token(access_token)
        if bad:
            return bad
        if not isinstance(body, dict):
            return self.error(40035)
        if body.get("open_kfid") not in self._log:
            return self.error(95000)
        if not isinstance(body.get("external_userid"), str) or not body["external_userid"]:
            return self.error(40003)
        return None

    def _record_sent(
        self,
        via: str,
        body: dict[str, Any],
        account: str,
        touser: str,
        content: str | None,
        msgid: str,
        access_token: str | None,
    ) -> dict[str, Any]:
        size = len(content.encode("utf-8")) if content is not None else 0
        record = {
            "via": via,
            "touser": touser,
            "open_kfid": account,
            "msgtype": body.get("msgtype"),
            "content": content,
            "msgid": msgid,
            "access_token": access_token,
            "at": self.clock(),
            "bytes": size,
            "over_limit": size > TEXT_LIMIT_BYTES,
            "payload": body,
        }
        self._sent.append(record)
        self._changed.notify_all()
        return record
