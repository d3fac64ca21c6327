"""Callback authenticity: signatures, freshness, safe XML and AES (safe mode).

Everything here raises CallbackRejected with the HTTP status the caller should answer,
so hostile or broken input becomes a clear 4xx and never reaches the queue.
"""

from __future__ import annotations

import binascii
import codecs
import hashlib
import hmac
import re
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


# Byte order marks, longest first (UTF-32's little-endian mark starts with UTF-16's).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z][\w.:-]{0,39})["']""")
# Text encodings a callback body may declare (codec names as codecs.lookup gives them);
# codecs such as unicode_escape, which turn escapes into arbitrary characters, are not.
_TEXT_CODECS = {"utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"}
_TEXT_CODECS |= {"utf-32-be", "ascii", "gbk", "gb2312", "gb18030", "big5", "big5hkscs"}
_TEXT_CODEC_PREFIXES = ("iso8859-", "cp125", "cp936", "cp950")


def _codec(name: str) -> str | None:
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        return None
    return codec if codec in _TEXT_CODECS or codec.startswith(_TEXT_CODEC_PREFIXES) else None


def decode_xml(body: bytes) -> str:
    """The callback body as text, decoded the way XML says: by its byte order mark, else by
    the encoding its declaration names, else as UTF-8. An encoding that is not a text
    encoding, or bytes that are not what it says, are a 400 naming the encoding (a signed
    body in UTF-16 or ISO-8859-1 is read, not turned into a 500)."""
    encoding = next((name for bom, name in _BOMS if body.startswith(bom)), None)
    if encoding is None:
        declared = _DECLARED.match(body[:256])
        encoding = "utf-8"
        if declared is not None:
            name = declared.group(1).decode("ascii")
            encoding = _codec(name) or ""
            if not encoding:
                raise CallbackRejected(400, f"unsupported XML encoding {name!r}; send UTF-8")
    try:
        return body.decode(encoding)
    except UnicodeDecodeError:
        raise CallbackRejected(400, f"the body is not valid {encoding} text") from None


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
