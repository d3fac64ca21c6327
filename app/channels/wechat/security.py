"""Callback authenticity: signatures, freshness, safe XML and AES (safe mode).

Everything here raises CallbackRejected with the HTTP status the caller should answer,
so hostile or broken input becomes a clear 4xx and never reaches the queue.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import time
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from wechatpy.crypto import PrpCrypto
from wechatpy.exceptions import InvalidAppIdException


class CallbackRejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def sign(*parts: str) -> str:
    """WeChat's signature: sha1 over the sorted parts, concatenated."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def check_signature(token: str, signature: str, *parts: str) -> None:
    expected = sign(token, *parts)
    if not signature or not hmac.compare_digest(expected, signature.lower()):
        raise CallbackRejected(403, "invalid signature")


def check_timestamp(timestamp: str, window_s: int, now: float | None = None) -> None:
    """Refuses replays: WeChat's timestamp must be within `window_s` of our clock (0 = off)."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        raise CallbackRejected(400, "timestamp must be an integer") from None
    if window_s and abs((now or time.time()) - ts) > window_s:
        raise CallbackRejected(403, "timestamp outside the accepted window (replay?)")


def parse_xml(body: bytes | str) -> dict[str, str]:
    """Parses a flat WeChat XML document; DTDs and entities (XXE, billion laughs) are refused."""
    if not body or not body.strip():
        raise CallbackRejected(400, "empty body")
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise CallbackRejected(400, "XML with DTD or entities is not accepted") from None
    except (ParseError, ValueError):
        raise CallbackRejected(400, "malformed XML") from None
    if root.tag != "xml":
        raise CallbackRejected(400, "root element must be <xml>")
    fields: dict[str, str] = {}
    for child in root:
        fields[child.tag] = (child.text or "").strip() if len(child) == 0 else ""
    return fields


def decrypt(aes_key: str, app_id: str, encrypt: str, *, receiver: str = "AppId") -> str:
    """Decrypts a safe-mode payload, checking that it was meant for our AppId (WeCom: the
    same scheme, with the CorpID as receiveid; also used for its encrypted echostr)."""
    if not encrypt:
        raise CallbackRejected(400, "missing Encrypt")
    try:
        key = binascii.a2b_base64(aes_key + "=")
        plain = PrpCrypto(key).decrypt(encrypt, app_id)
    except InvalidAppIdException:
        raise CallbackRejected(400, f"message is for a different {receiver}") from None
    except Exception:  # bad base64, padding, length or UTF-8 in attacker-controlled input
        raise CallbackRejected(400, "Encrypt could not be decrypted") from None
    return plain.decode("utf-8") if isinstance(plain, bytes) else plain
