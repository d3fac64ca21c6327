"""How WeChat's API servers put answers on the wire.

WeChat answers errors with HTTP 200 and a JSON body, labelled
``application/json; encoding=utf-8``, with non-ASCII text left unescaped; a client
that only looks at the HTTP status misses every failure, which is what we want the
simulator to expose.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from flask import Response

JSON_CONTENT_TYPE = "application/json; encoding=utf-8"

#: The errmsg WeChat sends with each code (as seen in its docs and replies).
ERRMSG: dict[int, str] = {
    -1: "system error",
    0: "ok",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40007: "invalid media_id",
    40008: "invalid message type",
    40013: "invalid appid",
    40014: "invalid access_token",
    40125: "invalid appsecret",
    40164: "invalid ip 0.0.0.0 ipv6 ::ffff:0.0.0.0, not in whitelist",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    41006: "media_id missing",
    42001: "access_token expired",
    44004: "empty content",
    45009: "reach max api daily quota limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    45080: "typing is not allowed, the user has not interacted recently",
    45081: "typing is already on",
    47001: "data format error",
    48001: "api unauthorized",
}


def errmsg_for(errcode: int, *, with_rid: bool = False) -> str:
    """The errmsg for a code; ``with_rid`` appends the ``rid: ...`` suffix real WeChat adds."""
    msg = ERRMSG.get(errcode, "system error" if errcode else "ok")
    return f"{msg} rid: {_rid()}" if with_rid and errcode else msg


def _rid() -> str:
    return "-".join(secrets.token_hex(4) for _ in range(3))


def json_response(payload: dict[str, Any], status: int = 200) -> Response:
    """A JSON body exactly as WeChat labels and encodes it."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return Response(body.encode("utf-8"), status=status, content_type=JSON_CONTENT_TYPE)


def error_response(errcode: int, errmsg: str) -> Response:
    """WeChat's error shape: always HTTP 200, the failure is only in the body."""
    return json_response({"errcode": errcode, "errmsg": errmsg})


def gateway_error_page(status: int) -> Response:
    """What a proxy in front of WeChat returns on 5xx: HTML, not JSON."""
    body = f"<html><body><h1>{status} Server Error</h1></body></html>"
    return Response(body, status=status, content_type="text/html")


def media_response(data: bytes, content_type: str, filename: str) -> Response:
    """Media bytes with the headers WeChat's media/get sends."""
    return Response(
        data,
        content_type=content_type,
        headers={
            "Content-disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-cache, must-revalidate",
        },
    )
