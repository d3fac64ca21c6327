"""WeChat's message side: what WeChat POSTs to our service's callback URL.

Signs, encrypts and retries the way WeChat does, then judges the passive reply the
way WeChat would, so a test can tell "the customer got an answer" apart from "the
customer saw 该公众号暂时无法提供服务". Official Account only; a WeCom variant
would override ``prepare`` and ``verify_url`` (always encrypted, AgentID, encrypted
echostr).
"""

from __future__ import annotations

import hashlib
import secrets
import struct
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Literal

import requests
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException

from . import messages

Mode = Literal["plain", "compat", "safe"]

#: What the customer sees when WeChat gets no usable answer in time.
CUSTOMER_ERROR = "该公众号暂时无法提供服务，请稍后再试"
#: About where WeChat stops showing a passive text reply in full.
PASSIVE_TEXT_LIMIT_BYTES = 2048


class InvalidReply(ValueError):
    """A passive reply WeChat would reject (bad signature, wrong key or app id, not XML)."""


def wechat_signature(*parts: str) -> str:
    """sha1 over the sorted, concatenated parts: both ``signature`` and ``msg_signature``."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PreparedCallback:
    """One signed request, reused byte for byte by every retry."""

    params: dict[str, str]
    body: str
    openid: str


@dataclass
class Attempt:
    number: int
    status: int | None  # None: no HTTP response (timeout or connection error)
    elapsed: float
    body: str
    error: str | None = None


@dataclass
class Delivery:
    xml: str
    attempts: list[Attempt] = field(default_factory=list)
    reply: dict[str, Any] | None = None
    reply_error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def answered(self) -> bool:
        return any(a.status is not None for a in self.attempts)

    @property
    def answered_on(self) -> int | None:
        """Which try (1-3) got the HTTP answer that ended the delivery, if any."""
        return next((a.number for a in self.attempts if a.status is not None), None)

    @property
    def ok(self) -> bool:
        """WeChat accepted the answer (a passive reply or an empty "received")."""
        return self.answered and self.reply_error is None

    @property
    def customer_sees_error(self) -> bool:
        return not self.ok


class CallbackClient:
    """Plays WeChat pushing messages to one Official Account's callback URL."""

    def __init__(
        self,
        callback_url: str,
        token: str,
        app_id: str,
        *,
        aes_key: str | None = None,
        mode: Mode = "plain",
        account: str = "gh_sim_account",
        session: requests.Session | None = None,
    ) -> None:
        if mode not in ("plain", "compat", "safe"):
            raise ValueError(f"mode must be plain, compat or safe, not {mode!r}")
        if mode != "plain" and (aes_key is None or len(aes_key) != 43):
            raise ValueError(f"{mode} mode needs the 43-character EncodingAESKey")
        self.callback_url = callback_url
        self.token = token
        self.app_id = app_id
        self.aes_key = aes_key
        self.mode: Mode = mode
        self.account = account
        self.http = session or requests.Session()
        self._crypto = WeChatCrypto(token, aes_key, app_id) if aes_key else None

    # --- message builders (ToUserName is the account) ------------------------------

    def text(
        self,
        from_user: str,
        content: str,
        msg_id: str | int | None = None,
        create_time: int | None = None,
    ) -> str:
        return messages.text(self.account, from_user, content, msg_id, create_time)

    def image(
        self,
        from_user: str,
        pic_url: str,
        media_id: str,
        msg_id: str | int | None = None,
        create_time: int | None = None,
    ) -> str:
        return messages.image(self.account, from_user, pic_url, media_id, msg_id, create_time)

    def voice(
        self,
        from_user: str,
        media_id: str,
        recognition: str | None,
        msg_id: str | int | None = None,
        create_time: int | None = None,
        audio_format: str = "amr",
    ) -> str:
        return messages.voice(
            self.account, from_user, media_id, recognition, msg_id, create_time, audio_format
        )

    def video(
        self,
        from_user: str,
        media_id: str,
        thumb_media_id: str,
        msg_id: str | int | None = None,
        create_time: int | None = None,
        short: bool = False,
    ) -> str:
        return messages.video(
            self.account,
            from_user,
            media_id,
            thumb_media_id,
            msg_id,
            create_time,
            short,
        )

    def location(
        self,
        from_user: str,
        x: float,
        y: float,
        scale: int = 15,
        label: str = "",
        msg_id: str | int | None = None,
        create_time: int | None = None,
    ) -> str:
        return messages.location(self.account, from_user, x, y, scale, label, msg_id, create_time)

    def link(
        self,
        from_user: str,
        title: str,
        description: str,
        url: str,
        msg_id: str | int | None = None,
        create_time: int | None = None,
    ) -> str:
        return messages.link(self.account, from_user, title, description, url, msg_id, create_time)

    def event(
        self,
        from_user: str,
        event: str,
        event_key: str | None = None,
        ticket: str | None = None,
        create_time: int | None = None,
    ) -> str:
        return messages.event(self.account, from_user, event, event_key, ticket, create_time)

    # --- the wire -------------------------------------------------------------------

    def prepare(
        self, xml: str, *, timestamp: str | int | None = None, nonce: str | None = None
    ) -> PreparedCallback:
        """Query and body exactly as WeChat would send ``xml`` in this account's mode."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or _new_nonce()
        fields = _header_fields(xml)
        openid = fields.get("FromUserName", "")
        params = {
            "signature": wechat_signature(self.token, ts, nonce),
            "timestamp": ts,
            "nonce": nonce,
            "openid": openid,
        }
        if self.mode == "plain":
            return PreparedCallback(params, xml, openid)
        assert self._crypto is not None
        sealed = ET.fromstring(self._crypto.encrypt_message(xml, nonce, ts))
        encrypt = sealed.findtext("Encrypt") or ""
        params["encrypt_type"] = "aes"
        params["msg_signature"] = sealed.findtext("MsgSignature") or ""
        if self.mode == "safe":
            to_user = fields.get("ToUserName") or self.account
            body = (
                f"<xml>\n<ToUserName>{messages.cdata(to_user)}</ToUserName>\n"
                f"<Encrypt>{messages.cdata(encrypt)}</Encrypt>\n</xml>"
            )
        else:  # compat: the plaintext fields plus Encrypt
            head, _, _ = xml.rpartition("</xml>")
            body = f"{head.rstrip()}\n<Encrypt>{messages.cdata(encrypt)}</Encrypt>\n</xml>"
        return PreparedCallback(params, body, openid)

    def post(
        self,
        xml: str,
        *,
        timestamp: str | int | None = None,
        nonce: str | None = None,
        timeout: float = 5.0,
    ) -> requests.Response:
        """One signed POST, no retries; raises on timeout like requests does."""
        return self._send(self.prepare(xml, timestamp=timestamp, nonce=nonce), timeout)

    def deliver(self, xml: str, *, tries: int = 3, wait: float = 5.0) -> Delivery:
        """WeChat's delivery: up to ``tries`` identical POSTs, each given ``wait`` seconds.

        Only a missing response (timeout, connection error) causes a retry, sent as soon
        as the previous try timed out (WeChat's 5 s, three tries); any HTTP answer ends
        the delivery, and is then judged as WeChat would judge it. A service in passive
        mode holds a try while it writes the answer, and lets a try lapse to get another.
        """
        prepared = self.prepare(xml)
        delivery = Delivery(xml)
        for number in range(1, tries + 1):
            started = time.monotonic()
            try:
                resp = self._send(prepared, wait)
            except requests.Timeout:
                delivery.attempts.append(
                    Attempt(
                        number,
                        None,
                        time.monotonic() - started,
                        "",
                        f"no response in {wait}s",
                    )
                )
                continue
            except requests.ConnectionError as exc:
                delivery.attempts.append(
                    Attempt(
                        number,
                        None,
                        time.monotonic() - started,
                        "",
                        f"connection error: {exc}",
                    )
                )
                continue
            delivery.attempts.append(
                Attempt(number, resp.status_code, time.monotonic() - started, resp.text)
            )
            self._judge(delivery, resp, prepared.openid)
            return delivery
        delivery.reply_error = f"no response on any of {tries} tries"
        return delivery

    def verify_url(
        self,
        echostr: str,
        *,
        timestamp: str | int | None = None,
        nonce: str | None = None,
    ) -> requests.Response:
        """The GET WeChat sends when the URL is saved in the admin console."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or _new_nonce()
        params = {
            "signature": wechat_signature(self.token, ts, nonce),
            "timestamp": ts,
            "nonce": nonce,
            "echostr": echostr,
        }
        return self.http.get(self.callback_url, params=params, timeout=5.0)

    def decrypt_reply(self, body: str) -> dict[str, Any] | None:
        """The passive reply as a dict; encrypted ones are signature-checked and decrypted.

        None for an empty body or ``success`` (received, nothing to say).
        """
        text = body.strip()
        if text in ("", "success"):
            return None
        try:
            fields = messages.xml_to_dict(text)
        except ET.ParseError as exc:
            raise InvalidReply(f"reply is not XML: {exc}: {text[:200]!r}") from None
        if "Encrypt" not in fields:
            return fields
        if self._crypto is None:
            raise InvalidReply("encrypted reply, but no EncodingAESKey is configured")
        missing = [k for k in ("MsgSignature", "TimeStamp", "Nonce") if not fields.get(k)]
        if missing:
            raise InvalidReply(f"encrypted reply lacks {', '.join(missing)}")
        try:
            inner = self._crypto.decrypt_message(
                {"Encrypt": fields["Encrypt"]},
                fields["MsgSignature"],
                fields["TimeStamp"],
                fields["Nonce"],
            )
        except InvalidSignatureException:
            raise InvalidReply("MsgSignature does not match the encrypted reply") from None
        except InvalidAppIdException:
            raise InvalidReply("encrypted reply names another app id") from None
        except (ValueError, IndexError, struct.error) as exc:
            raise InvalidReply(f"cannot decrypt reply: {exc!r}") from None
        try:
            return messages.xml_to_dict(inner)
        except ET.ParseError as exc:
            raise InvalidReply(f"decrypted reply is not XML: {exc}") from None

    # --- internals ------------------------------------------------------------------

    def _send(self, prepared: PreparedCallback, timeout: float) -> requests.Response:
        return self.http.post(
            self.callback_url,
            params=prepared.params,
            data=prepared.body.encode("utf-8"),
            headers={"Content-Type": "text/xml", "User-Agent": "Mozilla/4.0"},
            timeout=timeout,
        )

    def _judge(self, delivery: Delivery, resp: requests.Response, openid: str) -> None:
        if resp.status_code != 200:
            delivery.reply_error = f"HTTP {resp.status_code}"
            return
        try:
            reply = self.decrypt_reply(resp.text)
        except InvalidReply as exc:
            delivery.reply_error = str(exc)
            return
        if reply is None:
            return
        delivery.reply = reply
        encrypted = "Encrypt" in messages.xml_to_dict(resp.text.strip())
        if self.mode == "safe" and not encrypted:
            delivery.reply_error = "plaintext reply, but safe mode requires an encrypted one"
        elif self.mode == "plain" and encrypted:
            delivery.reply_error = "encrypted reply, but the account is in plain mode"
        elif not reply.get("MsgType"):
            delivery.reply_error = "reply lacks MsgType"
        if reply.get("ToUserName") != openid:
            delivery.warnings.append(f"reply ToUserName {reply.get('ToUserName')!r} != {openid!r}")
        content = reply.get("Content")
        if isinstance(content, str) and len(content.encode("utf-8")) > PASSIVE_TEXT_LIMIT_BYTES:
            delivery.warnings.append(
                f"passive text reply is {len(content.encode('utf-8'))} bytes, over ~2048"
            )


def _header_fields(xml: str) -> dict[str, str]:
    """Sender and recipient of ``xml``; tolerant, so malformed bodies can be posted too."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return {}
    return {tag: root.findtext(tag) or "" for tag in ("FromUserName", "ToUserName")}


def _new_nonce() -> str:
    """WeChat's nonces are decimal numbers of up to ten digits."""
    return str(secrets.randbelow(2**31 - 10**8) + 10**8)
