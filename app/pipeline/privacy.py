"""Masking of personal numbers (phones, bank cards, Chinese ID numbers) before anything is
stored or logged.

Customers paste their phone number, ID number or card number into the chat; none of it is
needed to answer, and none of it may sit in the database, the logs or the model's prompt.
Masking keeps the first 3 and last 4 characters so staff can still tell numbers apart.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection

# Digits not glued to other digits or letters (an order number's tail is not a phone).
_EDGE_L = r"(?<![0-9A-Za-z])"
_EDGE_R = r"(?![0-9A-Za-z])"
_ID = re.compile(
    _EDGE_L
    + r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]"
    + _EDGE_R
)
_CARD = re.compile(_EDGE_L + r"\d{4}(?:[ -]?\d{4}){3}(?:[ -]?\d{1,3})?" + _EDGE_R)
_MOBILE = re.compile(_EDGE_L + r"(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}" + _EDGE_R)
_LANDLINE = re.compile(_EDGE_L + r"0\d{2,3}-\d{7,8}" + _EDGE_R)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _keep_ends(raw: str) -> str:
    chars = [c for c in raw if c.isalnum()]
    if len(chars) <= 7:
        return "*" * len(chars)
    return "".join(chars[:3]) + "*" * (len(chars) - 7) + "".join(chars[-4:])


def _card(m: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", m.group())
    # 16-19 digits that pass the Luhn check, or start as UnionPay cards do (62): a bank
    # card, even mistyped. Other long numbers (order numbers) are left alone.
    card = 16 <= len(digits) <= 19 and (_luhn_ok(digits) or digits.startswith("62"))
    return _keep_ends(digits) if card else m.group()


def mask_pii(text: str, keep: Collection[str] = ()) -> str:
    """Replaces phone, bank card and ID numbers in ``text`` by masked forms. A number that
    occurs in one of ``keep`` (the knowledge an answer comes from: a hotline, a service
    hall's phone) is the business's own, and stays."""
    if not text or not any(ch.isdigit() for ch in text):
        return text

    def unless_kept(mask: Callable[[re.Match[str]], str]) -> Callable[[re.Match[str]], str]:
        return lambda m: m.group() if any(m.group() in k for k in keep) else mask(m)

    text = _ID.sub(unless_kept(lambda m: _keep_ends(m.group())), text)
    text = _CARD.sub(unless_kept(_card), text)
    text = _MOBILE.sub(
        unless_kept(lambda m: _keep_ends(re.sub(r"^\+?86[ -]?", "", m.group()))), text
    )
    return _LANDLINE.sub(unless_kept(lambda m: _keep_ends(m.group())), text)


#: The longest stretch of text a number to mask can span (a spaced 19-digit card).
MAX_PII_CHARS = 24


class _MaskingRecordFactory:
    """Masks every log record's message as it is created, whatever handler (Flask,
    Celery, gunicorn) later writes it."""

    def __init__(self, base: logging._LogRecordFactory) -> None:  # type: ignore[name-defined]
        self.base = base

    def __call__(self, *args: object, **kwargs: object) -> logging.LogRecord:
        record = self.base(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logging's problem, not ours
            return record
        masked = mask_pii(message)
        if masked != message:
            record.msg, record.args = masked, None
        return record


def install_log_masking() -> None:
    """Masks personal numbers in every log record of this process (idempotent)."""
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _MaskingRecordFactory):
        logging.setLogRecordFactory(_MaskingRecordFactory(factory))
