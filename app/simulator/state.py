"""In-memory state of the simulated WeChat API, shared by all request threads.

Business rules live here, apart from Flask, so they read like WeChat's docs and can
be exercised without HTTP; ``api.py`` only maps requests onto these methods.
"""

from __future__ import annotations

import mimetypes
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .faults import Fault, FaultQueue
from .tokens import TokenStore
from .wire import errmsg_for

#: Above this, a text message is accepted but flagged: our service should split first.
TEXT_LIMIT_BYTES = 2048

CUSTOM_MSGTYPES = frozenset(
    {
        "text", "image", "voice", "video", "music", "news", "mpnews",
        "mpnewsarticle", "msgmenu", "wxcard", "miniprogrampage",
    }
)  # fmt: skip
TYPING_COMMANDS = frozenset({"Typing", "CancelTyping"})

_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "audio/amr": "amr",
    "voice/amr": "amr",
    "voice/speex": "speex",
    "audio/mpeg": "mp3",
    "video/mp4": "mp4",
}


@dataclass(frozen=True)
class Media:
    media_id: str
    data: bytes
    content_type: str
    filename: str

    @property
    def is_video(self) -> bool:
        """WeChat answers a video's media/get with JSON ``{"video_url"}``, not bytes."""
        return self.content_type.startswith("video/")


class WeChatAPISimulator:
    """WeChat's API servers for one Official Account, in memory and thread-safe.

    ``clock`` drives token expiry and the ``at`` stamps, so tests can jump hours
    ahead without sleeping. ``with_rid`` makes errmsg end in ``rid: ...`` as real
    WeChat's do, to catch code that compares errmsg text.
    """

    def __init__(
        self,
        app_id: str,
        app_secret: str,
        *,
        token_ttl: int = 7200,
        clock: Callable[[], float] = time.time,
        with_rid: bool = False,
    ) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.token_ttl = token_ttl
        self.clock = clock
        self.with_rid = with_rid
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._init_state()

    def _init_state(self) -> None:
        self._tokens = TokenStore(self.token_ttl, self.clock)
        self._faults = FaultQueue()
        self._media: dict[str, Media] = {}
        self._sent: list[dict[str, Any]] = []
        self._typing: list[dict[str, Any]] = []
        self._calls: list[dict[str, Any]] = []
        self._token_requests: Counter[str] = Counter()

    # --- inspection (snapshots, safe to read while requests run) -----------------

    @property
    def sent(self) -> list[dict[str, Any]]:
        """Accepted customer-service messages: touser, msgtype, content, access_token, at, ..."""
        with self._lock:
            return [dict(m) for m in self._sent]

    @property
    def typing(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(t) for t in self._typing]

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Every API request: path, method, errcode (None: not JSON), http_status, injected, at."""
        with self._lock:
            return [dict(c) for c in self._calls]

    @property
    def token_requests(self) -> dict[str, int]:
        """Requests per token endpoint, failures included: shows refresh storms."""
        with self._lock:
            return dict(self._token_requests)

    @property
    def pending_faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._faults.pending()

    def wait_for_sent(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Blocks until at least ``n`` messages were sent; the service sends asynchronously."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._sent) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"expected {n} sent message(s) within {timeout}s, got "
                        f"{len(self._sent)}: {self._sent!r}; last calls: {self._calls[-10:]!r}"
                    )
                self._changed.wait(left)
            return [dict(m) for m in self._sent]

    # --- control ----------------------------------------------------------------

    def inject(
        self,
        path_suffix: str,
        errcode: int,
        times: int = 1,
        errmsg: str | None = None,
        http_status: int = 200,
        delay: float = 0,
    ) -> None:
        """Makes the next ``times`` calls to the endpoint fail (queued behind earlier faults)."""
        with self._lock:
            self._faults.add(Fault(path_suffix, errcode, times, errmsg, http_status, delay))

    def take_fault(self, path: str) -> Fault | None:
        with self._lock:
            return self._faults.take(path)

    def add_media(
        self,
        media_id: str,
        data: bytes,
        content_type: str = "image/jpeg",
        filename: str | None = None,
    ) -> None:
        """Registers what ``media/get`` returns, as if a user had sent it."""
        if filename is None:
            ext = _EXTENSIONS.get(content_type) or (
                (mimetypes.guess_extension(content_type) or ".bin").lstrip(".")
            )
            filename = f"{media_id}.{ext}"
        with self._lock:
            self._media[media_id] = Media(media_id, bytes(data), content_type, filename)

    def issue_token(self) -> str:
        """A valid ``/cgi-bin/token`` token without an HTTP round trip (not counted)."""
        with self._lock:
            return self._tokens.issue()[0]

    def expire_all_tokens(self) -> None:
        """Every token answers 42001 from now on, as after a long outage."""
        with self._lock:
            self._tokens.expire_all()

    def reset(self) -> None:
        """Back to a fresh account: tokens, faults, media and records all cleared."""
        with self._changed:
            self._init_state()
            self._changed.notify_all()

    # --- bookkeeping used by the HTTP layer --------------------------------------

    def record_call(
        self,
        path: str,
        method: str,
        errcode: int | None,
        http_status: int,
        injected: bool,
    ) -> None:
        with self._changed:
            self._calls.append(
                {
                    "path": path,
                    "method": method,
                    "errcode": errcode,
                    "http_status": http_status,
                    "injected": injected,
                    "at": self.clock(),
                }
            )
            self._changed.notify_all()

    def count_token_request(self, path: str) -> None:
        with self._lock:
            self._token_requests[path] += 1

    def error(self, errcode: int, errmsg: str | None = None) -> dict[str, Any]:
        return {
            "errcode": errcode,
            "errmsg": errmsg or errmsg_for(errcode, with_rid=self.with_rid),
        }

    # --- the endpoints' rules -----------------------------------------------------

    def api_token(self, grant_type: str | None, appid: str | None, secret: str | None) -> dict:
        """``GET /cgi-bin/token``."""
        if grant_type != "client_credential":
            return self.error(40002)
        bad = self._check_credentials(appid, secret)
        if bad:
            return bad
        with self._lock:
            value, expires_in = self._tokens.issue()
        return {"access_token": value, "expires_in": expires_in}

    def api_stable_token(self, body: Any) -> dict:
        """``POST /cgi-bin/stable_token`` with a JSON body."""
        if not isinstance(body, dict):
            return self.error(47001)
        if body.get("grant_type") != "client_credential":
            return self.error(40002)
        bad = self._check_credentials(body.get("appid"), body.get("secret"))
        if bad:
            return bad
        force = body.get("force_refresh", False)
        force = force is True or str(force).lower() == "true"
        with self._lock:
            value, expires_in = self._tokens.stable(force)
        return {"access_token": value, "expires_in": expires_in}

    def check_token(self, access_token: str | None) -> dict | None:
        """The error for a missing or unusable token, or None when it may be used."""
        if not access_token:
            return self.error(41001)
        with self._lock:
            code = self._tokens.check(access_token)
        return self.error(code) if code else None

    def api_custom_send(self, access_token: str | None, body: Any) -> dict:
        """``POST /cgi-bin/message/custom/send``."""
        bad = self.check_token(access_token)
        if bad:
            return bad
        if not isinstance(body, dict):
            return self.error(47001)
        touser = body.get("touser")
        if not isinstance(touser, str) or not touser.strip():
            return self.error(40003)
        msgtype = body.get("msgtype")
        content, bad = self.checked_content(body, CUSTOM_MSGTYPES)
        if bad:
            return bad
        size = len(content.encode("utf-8")) if content is not None else 0
        record = {
            "touser": touser,
            "msgtype": msgtype,
            "content": content,
            "access_token": access_token,
            "at": self.clock(),
            "bytes": size,
            "over_limit": size > TEXT_LIMIT_BYTES,
            "payload": body,
        }
        with self._changed:
            self._sent.append(record)
            self._changed.notify_all()
        return self.error(0)

    def checked_content(
        self, body: dict[str, Any], msgtypes: frozenset[str]
    ) -> tuple[str | None, dict | None]:
        """A message's text (None for other types), or the error for a bad type or text."""
        msgtype = body.get("msgtype")
        if msgtype not in msgtypes:
            return None, self.error(40008)
        if msgtype != "text":
            return None, None
        text = body.get("text")
        content = text.get("content") if isinstance(text, dict) else None
        if not isinstance(content, str) or not content:
            return None, self.error(44004)
        return content, None

    def api_typing(self, access_token: str | None, body: Any) -> dict:
        """``POST /cgi-bin/message/custom/typing``."""
        bad = self.check_token(access_token)
        if bad:
            return bad
        if not isinstance(body, dict):
            return self.error(47001)
        touser = body.get("touser")
        if not isinstance(touser, str) or not touser.strip():
            return self.error(40003)
        if body.get("command") not in TYPING_COMMANDS:
            return self.error(47001)
        with self._changed:
            self._typing.append(
                {
                    "touser": touser,
                    "command": body["command"],
                    "access_token": access_token,
                    "at": self.clock(),
                }
            )
            self._changed.notify_all()
        return self.error(0)

    def api_media_get(self, access_token: str | None, media_id: str | None) -> Media | dict:
        """``GET /cgi-bin/media/get``: the Media, or an error dict."""
        bad = self.check_token(access_token)
        if bad:
            return bad
        if not media_id:
            return self.error(41006)
        with self._lock:
            media = self._media.get(media_id)
        return media if media is not None else self.error(40007)

    def raw_media(self, media_id: str) -> Media | None:
        with self._lock:
            return self._media.get(media_id)

    def _check_credentials(self, appid: Any, secret: Any) -> dict | None:
        if not appid:
            return self.error(41002)
        if appid != self.app_id:
            return self.error(40013)
        if not secret:
            return self.error(41004)
        if secret != self.app_secret:
            return self.error(40125)
        return None
