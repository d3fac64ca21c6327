"""Calls to WeCom's API (gettoken, message/send), all through WECOM_API_BASE_URL so an
outbound proxy or the simulator can stand in.

wechatpy's WeCom client is not used: its gettoken URL is hard-coded to
qyapi.weixin.qq.com and its auto_retry re-fetches without bound. The retry rules are
the shared ones (app/channels/api_client.py) with WeCom's codes; the token is held like
the Official Account's, one row for all processes.
"""

from __future__ import annotations

import requests

from app.channels.api_client import TokenAPIClient, WeChatAPIError
from app.channels.wechat.tokens import TokenHolder
from app.settings import Settings

#: WeCom's "token no longer accepted" codes. Its 40001 means a wrong *secret* (at gettoken),
#: so unlike the Official Account's it is not a token error and is not retried.
TOKEN_ERRORS = frozenset({40014, 42001})
#: -1 system busy, 45033 too many concurrent calls: both pass; everything else is permanent
#: (81013 user not in the app's visible range, 60020 IP not trusted, 45009 rate limit, ...).
RETRYABLE_ERRORS = frozenset({-1, 45033}) | TOKEN_ERRORS


class WeComAPI(TokenAPIClient):
    token_errors = TOKEN_ERRORS
    retryable_errors = RETRYABLE_ERRORS

    def __init__(self, settings: Settings, session: requests.Session | None = None) -> None:
        super().__init__(
            settings.wecom_api_base_url,
            timeout=settings.wechat_http_timeout_s,
            retries=settings.wechat_send_retries,
            session=session,
        )
        self.corp_id = settings.wecom_corp_id
        self.secret = settings.wecom_secret
        self.agent_id = int(settings.wecom_agent_id or 0)
        # A token belongs to one app (corpid + that app's secret): one row per app.
        self.tokens = TokenHolder(
            token_key(self.corp_id, self.agent_id), self._fetch_token, settings.data_dir / "locks"
        )

    def _fetch_token(self, force_refresh: bool) -> tuple[str, int]:
        # gettoken returns the token it already issued until that one expires; it has no
        # force flag, so a "forced" refresh is the same request.
        data = self._request(
            "GET", "/cgi-bin/gettoken", params={"corpid": self.corp_id, "corpsecret": self.secret}
        )
        return data["access_token"], int(data.get("expires_in", 7200))

    def send_text(self, userid: str, content: str) -> None:
        """Sends one text to a member; content over 2048 bytes would be cut by WeCom."""
        data = self.call(
            "/cgi-bin/message/send",
            {
                "touser": userid,
                "msgtype": "text",
                "agentid": self.agent_id,
                "text": {"content": content},
                "safe": 0,
                # WeCom's own duplicate check drops equal texts to a member for 30 min: two
                # customers' questions with the same FAQ answer would lose the second.
                "enable_duplicate_check": 0,
            },
        )
        # Errors for part of the recipients come back with errcode 0; ours is the only one.
        invalid = str(data.get("invaliduser") or "")
        if userid in invalid.split("|"):
            raise WeChatAPIError(81013, f"invaliduser: {invalid}", retryable=False)

    def typing(self, userid: str, on: bool = True) -> None:
        """WeCom apps have no typing indicator; kept so senders are interchangeable."""


def token_key(corp_id: str, agent_id: int | str) -> str:
    """The shared token's row key (access_tokens.app_id), apart from Official Accounts'."""
    return f"wecom:{corp_id}:{agent_id}"
