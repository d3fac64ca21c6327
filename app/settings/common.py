"""What the settings mixins share: the project root their path defaults hang from, and the
checks that more than one area's fields make (an http(s) URL, a callback Token, an
EncodingAESKey), as types, so that no area repeats them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator

PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: The key of a field's json_schema_extra that the README table shows instead of the default,
#: where the default is derived at start-up (None) or too long for a table cell.
SHOWN_DEFAULT = "shown_default"


def shown(text: str) -> dict[str, str]:
    """json_schema_extra for a field whose default the README table describes in words."""
    return {SHOWN_DEFAULT: text}


def http_url(v: str) -> str:
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http(s) URL, got {v!r}")
    return v.rstrip("/")


def callback_token(v: str) -> str:
    if v and not re.fullmatch(r"[A-Za-z0-9]{3,32}", v):
        raise ValueError("must be 3-32 letters or digits, as WeChat's admin console requires")
    return v


def aes_key(v: str) -> str:
    if v and not re.fullmatch(r"[A-Za-z0-9]{43}", v):
        raise ValueError("the EncodingAESKey must be exactly 43 letters or digits")
    return v


#: A base URL: http(s) with a host, kept without its trailing slash.
HttpUrlText = Annotated[str, AfterValidator(http_url)]
#: A callback Token as WeChat's and WeCom's consoles accept it (or empty).
CallbackToken = Annotated[str, AfterValidator(callback_token)]
