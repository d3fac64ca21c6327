"""JSON calls to a WeChat-family API (Official Account, WeCom) with one shared access token.

Both APIs answer errors as HTTP 200 with ``errcode``/``errmsg``, take the token as an
``access_token`` query parameter and want real UTF-8 JSON; they differ in which codes
mean "token invalid" and how a token is fetched, which subclasses say.

Written on requests rather than wechatpy's clients: those hard-code the token URL and
re-fetch the token without bound on token errors; here retries are bounded and the
token is shared by all processes (``TokenHolder``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests

from app.channels.wechat.tokens import TokenHolder

log = logging.getLogger(__name__)
T = TypeVar("T")


class WeChatAPIError(Exception):
    def __init__(self, errcode: int | None, errmsg: str, *, retryable: bool) -> None:
        super().__init__(f"WeChat API error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.retryable = retryable


class MediaTooLarge(Exception):
    """The media is larger than WECHAT_MEDIA_MAX_BYTES (not downloaded further)."""


@dataclass(frozen=True)
class Media:
    data: bytes
    content_type: str


class TokenAPIClient:
    """Base of the channel API clients; subclasses set the error sets and ``tokens``."""

    #: errcodes that mean the access token is no longer accepted: refresh once, then retry.
    token_errors: frozenset[int] = frozenset()
    #: errcodes worth retrying at all (busy, token); others are permanent.
    retryable_errors: frozenset[int] = frozenset({-1})
    tokens: TokenHolder

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        retries: int,
        session: requests.Session | None = None,
    ) -> None:
        self.base = base_url
        self.timeout = timeout
        self.retries = retries
        self.http = session or requests.Session()

    def call(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POSTs with the shared token; a bounded number of retries on -1, 5xx and token errors."""
        return self._with_token(
            path, lambda token: self._request("POST", path, payload, params={"access_token": token})
        )

    def _with_token(self, path: str, request: Callable[[str], T]) -> T:
        """Runs ``request(token)`` with the retry rules above (any call that needs the token)."""
        token = self.tokens.get()
        attempt = 0
        while True:
            try:
                return request(token)
            except WeChatAPIError as exc:
                if not exc.retryable or attempt >= self.retries:
                    raise
                attempt += 1
                if exc.errcode in self.token_errors:
                    token = self.tokens.invalidate(token)
                else:
                    time.sleep(min(0.2 * 2**attempt, 2.0))
                log.warning("retrying %s after %s (attempt %d)", path, exc, attempt)

    def download_media(self, media_id: str, max_bytes: int) -> Media:
        """``media/get`` (WeChat and WeCom): a temporary media (image, voice) a customer sent.

        Streamed and cut off past ``max_bytes`` (MediaTooLarge), so a huge file never sits
        in a worker's memory; WeChat's JSON errors (40007: expired) raise WeChatAPIError."""
        return self._with_token(
            "/cgi-bin/media/get",
            lambda token: self._get_media(media_id, token, max_bytes),
        )

    def _get_media(self, media_id: str, token: str, max_bytes: int) -> Media:
        try:
            with self.http.get(
                self.base + "/cgi-bin/media/get",
                params={"access_token": token, "media_id": media_id},
                timeout=self.timeout,
                stream=True,
            ) as resp:
                if resp.status_code >= 500:
                    raise WeChatAPIError(None, f"HTTP {resp.status_code}", retryable=True)
                content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
                declared = int(resp.headers.get("Content-Length") or 0)
                if declared > max_bytes:
                    raise MediaTooLarge(f"{declared} bytes > {max_bytes}")
                data = b""
                for chunk in resp.iter_content(64 * 1024):
                    data += chunk
                    if len(data) > max_bytes:
                        raise MediaTooLarge(f"more than {max_bytes} bytes")
        except requests.RequestException as exc:
            raise WeChatAPIError(None, f"network error: {exc}", retryable=True) from exc
        if content_type in ("application/json", "text/plain") or data[:1] == b"{":
            # WeChat reports errors (and a video's URL) as JSON with HTTP 200.
            self._check_errcode(_parse_json(data, resp.status_code))
            raise WeChatAPIError(None, "media/get returned JSON, not media", retryable=False)
        return Media(data, content_type)

    def _request(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        params: dict | None = None,
    ) -> dict:
        try:
            resp = self.http.request(
                method,
                self.base + path,
                params=params,
                timeout=self.timeout,
                data=None if payload is None else _json_bytes(payload),
                headers=None if payload is None else {"Content-Type": "application/json"},
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
        if not isinstance(data, dict):
            raise WeChatAPIError(None, "reply is not a JSON object", retryable=False)
        return self._check_errcode(data)

    def _check_errcode(self, data: dict[str, Any]) -> dict[str, Any]:
        errcode = int(data.get("errcode", 0) or 0)
        if errcode:
            raise WeChatAPIError(
                errcode, str(data.get("errmsg", "")), retryable=errcode in self.retryable_errors
            )
        return data


def _json_bytes(payload: dict[str, Any]) -> bytes:
    # WeChat shows \uXXXX escapes literally: send real UTF-8.
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def _parse_json(body: bytes, status: int) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WeChatAPIError(None, f"non-JSON reply (HTTP {status})", retryable=False) from None
    if not isinstance(data, dict):
        raise WeChatAPIError(None, f"unexpected JSON reply (HTTP {status})", retryable=False)
    return data
