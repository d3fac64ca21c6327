"""Calls to WeChat's API (token, customer-service messages, typing), all through
WECHAT_API_BASE_URL so an outbound proxy or the simulator can stand in.

Written on requests rather than wechatpy's client: that client hard-codes the token URL
and retries 40001 without bound; here retries are bounded and the token is shared.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import requests

from app.channels.wechat.tokens import TokenHolder
from app.settings import Settings

log = logging.getLogger(__name__)

TOKEN_ERRORS = {40001, 40014, 42001}
RETRYABLE_ERRORS = {-1, 45009} | TOKEN_ERRORS


class WeChatAPIError(Exception):
    def __init__(self, errcode: int | None, errmsg: str, *, retryable: bool) -> None:
        super().__init__(f"WeChat API error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.retryable = retryable


class OfficialAccountAPI:
    def __init__(self, settings: Settings, session: requests.Session | None = None) -> None:
        self.base = settings.wechat_api_base_url
        self.app_id = settings.wechat_app_id
        self.secret = settings.wechat_app_secret
        self.timeout = settings.wechat_http_timeout_s
        self.retries = settings.wechat_send_retries
        self.http = session or requests.Session()
        self.tokens = TokenHolder(self.app_id, self._fetch_token, settings.data_dir / "locks")

    def _fetch_token(self, force_refresh: bool) -> tuple[str, int]:
        data = self._post_json(
            "/cgi-bin/stable_token",
            {
                "grant_type": "client_credential",
                "appid": self.app_id,
                "secret": self.secret,
                "force_refresh": force_refresh,
            },
        )
        return data["access_token"], int(data.get("expires_in", 7200))

    def send_text(self, openid: str, content: str) -> None:
        self.call(
            "/cgi-bin/message/custom/send",
            {
                "touser": openid,
                "msgtype": "text",
                "text": {"content": content},
            },
        )

    def typing(self, openid: str, on: bool = True) -> None:
        command = "Typing" if on else "CancelTyping"
        self.call("/cgi-bin/message/custom/typing", {"touser": openid, "command": command})

    def call(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POSTs with the shared token; a bounded number of retries on -1, 5xx and token errors."""
        token = self.tokens.get()
        attempt = 0
        while True:
            try:
                return self._post_json(path, payload, params={"access_token": token})
            except WeChatAPIError as exc:
                if not exc.retryable or attempt >= self.retries:
                    raise
                attempt += 1
                if exc.errcode in TOKEN_ERRORS:
                    token = self.tokens.invalidate(token)
                else:
                    time.sleep(min(0.2 * 2**attempt, 2.0))
                log.warning("retrying %s after %s (attempt %d)", path, exc, attempt)

    def _post_json(self, path: str, payload: dict[str, Any], params: dict | None = None) -> dict:
        try:
            resp = self.http.post(
                self.base + path,
                params=params,
                timeout=self.timeout,
                data=_json_bytes(payload),
                headers={"Content-Type": "application/json"},
            )
        except requests.RequestException as exc:
            raise WeChatAPIError(None, f"network error: {exc}", retryable=True) from exc
        if resp.status_code >= 500:
            raise WeChatAPIError(None, f"HTTP {resp.status_code}", retryable=True)
        try:
            data = resp.json()
        except ValueError:
            raise WeChatAPIError(
                None, f"non-JSON reply (HTTP {resp.status_code})", retryable=resp.status_code >= 500
            ) from None
        errcode = int(data.get("errcode", 0) or 0)
        if errcode:
            raise WeChatAPIError(
                errcode, str(data.get("errmsg", "")), retryable=errcode in RETRYABLE_ERRORS
            )
        return data


def _json_bytes(payload: dict[str, Any]) -> bytes:
    import json

    # WeChat shows \uXXXX escapes literally: send real UTF-8.
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")
