"""Calls to WeChat's API (token, customer-service messages, typing; media/get in the base
class), all through WECHAT_API_BASE_URL so an outbound proxy or the simulator can stand in.

Written on requests rather than wechatpy's client: that client hard-codes the token URL
and retries 40001 without bound; here retries are bounded and the token is shared
(the HTTP and retry rules are in app/channels/api_client.py, shared with WeCom).
"""

from __future__ import annotations

import requests

from app.channels.api_client import Media, MediaTooLarge, TokenAPIClient, WeChatAPIError
from app.channels.wechat.tokens import TokenHolder
from app.settings import Settings

__all__ = ["Media", "MediaTooLarge", "OfficialAccountAPI", "WeChatAPIError"]

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
#: 45009 (daily API quota) is not here: nothing succeeds before WeChat's daily reset, so
#: retrying would only burn more of tomorrow's quota.
RETRYABLE_ERRORS = frozenset({-1}) | TOKEN_ERRORS


class OfficialAccountAPI(TokenAPIClient):
    token_errors = TOKEN_ERRORS
    retryable_errors = RETRYABLE_ERRORS

    def __init__(self, settings: Settings, session: requests.Session | None = None) -> None:
        super().__init__(
            settings.wechat_api_base_url,
            timeout=settings.wechat_http_timeout_s,
            retries=settings.wechat_send_retries,
            session=session,
        )
        self.app_id = settings.wechat_app_id
        self.secret = settings.wechat_app_secret
        self.tokens = TokenHolder(self.app_id, self._fetch_token, settings.data_dir / "locks")

    def _fetch_token(self, force_refresh: bool) -> tuple[str, int]:
        data = self._request(
            "POST",
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
        """One attempt, no retry: a cosmetic call must neither back off nor refresh the
        token (a token error is left to the send that follows, which refreshes it once)."""
        command = "Typing" if on else "CancelTyping"
        self._request(
            "POST",
            "/cgi-bin/message/custom/typing",
            {"touser": openid, "command": command},
            params={"access_token": self.tokens.get()},
        )
