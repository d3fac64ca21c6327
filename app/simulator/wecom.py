"""WeCom's (企业微信) API side for one self-built app: ``gettoken`` and ``message/send``.

Point WECOM_API_BASE_URL at ``serve_in_thread(create_wecom_simulator_app(sim))``. The
rules follow WeCom's documentation, where they differ from the Official Account's:

- ``GET /cgi-bin/gettoken?corpid&corpsecret`` returns the token already issued while it
  is valid (no stable_token, no force_refresh); a wrong corpid is 40013, a wrong secret
  40001 (which on WeCom means "bad secret", not "bad token").
- An unknown token is 40014, an expired one 42001, a missing one 41001.
- ``message/send`` needs ``agentid`` (41011 missing, 40056 not this app); recipients not
  in the app's visible range come back in ``invaliduser``, and if none is left, 81013.
  Text over 2048 bytes is cut; more than 30 messages a minute to one member are
  accepted but silently dropped (``dropped``), as WeCom does.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request

from .api import _json_body, add_common_routes, endpoint_decorator
from .state import WeChatAPISimulator
from .wire import json_response

GETTOKEN = "/cgi-bin/gettoken"
SEND = "/cgi-bin/message/send"
#: WeCom cuts a text message's content at this many bytes.
TEXT_LIMIT_BYTES = 2048
#: Per member and app, WeCom delivers at most this many messages a minute.
PER_MEMBER_PER_MINUTE = 30
MSGTYPES = frozenset(
    {
        "text", "image", "voice", "video", "file", "textcard", "news", "mpnews",
        "markdown", "miniprogram_notice", "template_card",
    }
)  # fmt: skip

#: The errmsg WeCom sends with each code (it appends a hint and a link, see ``with_rid``).
ERRMSG: dict[int, str] = {
    -1: "system busy",
    0: "ok",
    40001: "invalid credential",
    40008: "invalid message type",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40035: "invalid parameter",
    40056: "invalid agentid",
    41001: "access_token missing",
    41002: "corpid missing",
    41004: "corpsecret missing",
    41011: "agentid missing",
    42001: "access_token expired",
    44004: "empty content",
    45009: "api freq out of limit",
    45033: "api concurrent out of limit",
    60020: "not allow to access from your ip",
    81013: "user & party & tag all invalid",
}


class WeComAPISimulator(WeChatAPISimulator):
    """WeCom's servers for one app (``corp_id``, the app's ``secret`` and ``agent_id``).

    ``members`` limits who is in the app's visible range (default: everyone). The
    inspection and fault API is the Official Account simulator's (``sent``, ``calls``,
    ``token_requests``, ``inject``, ``expire_all_tokens``, ``reset``).
    """

    def __init__(
        self,
        corp_id: str,
        secret: str,
        agent_id: int | str,
        *,
        members: set[str] | None = None,
        token_ttl: int = 7200,
        clock: Callable[[], float] = time.time,
        with_rid: bool = False,
    ) -> None:
        self.agent_id = int(agent_id)
        self.members = set(members) if members is not None else None
        super().__init__(corp_id, secret, token_ttl=token_ttl, clock=clock, with_rid=with_rid)

    @property
    def corp_id(self) -> str:
        return self.app_id

    def _init_state(self) -> None:
        super()._init_state()
        self._dropped: list[dict[str, Any]] = []
        self._recent: defaultdict[str, deque[float]] = defaultdict(deque)

    @property
    def dropped(self) -> list[dict[str, Any]]:
        """Messages accepted with errcode 0 but never delivered (over 30/min to a member)."""
        with self._lock:
            return [dict(m) for m in self._dropped]

    def error(self, errcode: int, errmsg: str | None = None) -> dict[str, Any]:
        msg = errmsg or ERRMSG.get(errcode, "system busy" if errcode else "ok")
        if self.with_rid and errcode and errmsg is None:
            hint = f"{int(self.clock())}_{secrets.randbelow(1000)}_{secrets.token_hex(16)}"
            msg += (
                f", hint: [{hint}], from ip: 127.0.0.1, more info at "
                f"https://open.work.weixin.qq.com/devtool/query?e={errcode}"
            )
        return {"errcode": errcode, "errmsg": msg}

    def issue_token(self) -> str:
        with self._lock:
            return self._tokens.gettoken()[0]

    def check_token(self, access_token: str | None) -> dict | None:
        bad = super().check_token(access_token)
        if bad is not None and bad["errcode"] == 40001:
            return self.error(40014)  # WeCom's code for a token it does not know
        return bad

    # --- the endpoints' rules -----------------------------------------------------

    def api_gettoken(self, corpid: str | None, corpsecret: str | None) -> dict:
        """``GET /cgi-bin/gettoken``."""
        if not corpid:
            return self.error(41002)
        if corpid != self.corp_id:
            return self.error(40013)
        if not corpsecret:
            return self.error(41004)
        if corpsecret != self.app_secret:
            return self.error(40001)
        with self._lock:
            value, expires_in = self._tokens.gettoken()
        return {"errcode": 0, "errmsg": "ok", "access_token": value, "expires_in": expires_in}

    def api_message_send(self, access_token: str | None, body: Any) -> dict:
        """``POST /cgi-bin/message/send``."""
        bad = self.check_token(access_token)
        if bad:
            return bad
        if not isinstance(body, dict):
            return self.error(40035)
        if body.get("agentid") in (None, ""):
            return self.error(41011)
        try:
            agent = int(body["agentid"])
        except (TypeError, ValueError):
            return self.error(40056)
        if agent != self.agent_id:
            return self.error(40056)
        msgtype = body.get("msgtype")
        content, bad = self.checked_content(body, MSGTYPES)
        if bad:
            return bad
        users = [u for u in str(body.get("touser") or "").split("|") if u]
        valid = [u for u in users if self.members is None or u in self.members]
        if not valid:
            return self.error(81013)
        raw = content.encode("utf-8") if content is not None else b""
        truncated = len(raw) > TEXT_LIMIT_BYTES
        if truncated:
            content = raw[:TEXT_LIMIT_BYTES].decode("utf-8", errors="ignore")
        msgid = secrets.token_urlsafe(24)
        with self._changed:
            now = self.clock()
            for user in valid:
                record = {
                    "touser": user,
                    "msgtype": msgtype,
                    "content": content,
                    "agentid": agent,
                    "access_token": access_token,
                    "at": now,
                    "bytes": len(raw),
                    "truncated": truncated,
                    "msgid": msgid,
                    "payload": body,
                }
                recent = self._recent[user]
                while recent and recent[0] <= now - 60:
                    recent.popleft()
                if len(recent) >= PER_MEMBER_PER_MINUTE:
                    self._dropped.append(record)
                    continue
                recent.append(now)
                self._sent.append(record)
            self._changed.notify_all()
        return {
            "errcode": 0,
            "errmsg": "ok",
            "invaliduser": "|".join(u for u in users if u not in valid),
            "invalidparty": "",
            "invalidtag": "",
            "unlicenseduser": "",
            "msgid": msgid,
        }


def create_wecom_simulator_app(sim: WeComAPISimulator) -> Flask:
    """A Flask app serving ``sim`` with WeCom's paths, plus the ``/_sim/`` controls."""
    app = Flask("wecom_api_simulator", static_folder=None)
    app.extensions["wecom_simulator"] = sim

    endpoint = endpoint_decorator(sim)

    @app.get(GETTOKEN)
    @endpoint(token_endpoint=True)
    def gettoken() -> dict[str, Any]:
        return sim.api_gettoken(request.args.get("corpid"), request.args.get("corpsecret"))

    @app.post(SEND)
    @endpoint()
    def message_send() -> dict[str, Any]:
        return sim.api_message_send(request.args.get("access_token"), _json_body())

    @app.get("/_sim/dropped")
    def dropped() -> Response:
        return json_response({"dropped": sim.dropped})

    add_common_routes(app, sim, video_as_url=False)
    return app
