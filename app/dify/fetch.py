"""Downloading an image a tool caller names by URL, without becoming an SSRF proxy.

requests-hardened resolves the host, refuses private, loopback, link-local and other
internal addresses, and connects to the address it checked (no DNS-rebinding window);
every redirect hop goes through the same check. The body is read up to a byte limit.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
from requests_hardened import Config, Manager
from requests_hardened.ip_filter import InvalidIPAddress

from app.errors import BadRequest

TIMEOUT = (5, 15)
MAX_REDIRECTS = 3


class FetchRefused(BadRequest, ValueError):
    """The URL may not or could not be fetched; the message is for the caller."""

    code = "bad_image"


def _manager(allow_loopback: bool) -> Manager:
    return Manager(
        Config(
            default_timeout=TIMEOUT,
            never_redirect=False,
            ip_filter_enable=True,
            ip_filter_allow_loopback_ips=allow_loopback,
            user_agent_override="wxcs-ocr-fetch/1.0",
        )
    )


def fetch_bytes(url: str, max_bytes: int, *, allow_loopback: bool = False) -> bytes:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchRefused("image_url must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise FetchRefused("image_url must not carry credentials")
    session = _manager(allow_loopback).get_session()
    session.max_redirects = MAX_REDIRECTS
    try:
        with session.get(url, stream=True) as resp:
            if resp.status_code != 200:
                raise FetchRefused(f"the image URL answered HTTP {resp.status_code}")
            declared = resp.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchRefused(f"the image is larger than {max_bytes} bytes")
            data = bytearray()
            for chunk in resp.iter_content(64 * 1024):
                data += chunk
                if len(data) > max_bytes:
                    raise FetchRefused(f"the image is larger than {max_bytes} bytes")
            return bytes(data)
    except InvalidIPAddress:
        raise FetchRefused(
            f"{parts.hostname} resolves to a private or internal address; only public "
            "addresses may be fetched"
        ) from None
    except requests.TooManyRedirects:
        raise FetchRefused(f"the image URL redirected more than {MAX_REDIRECTS} times") from None
    except requests.RequestException as exc:
        raise FetchRefused(f"could not download the image: {type(exc).__name__}") from None
    finally:
        session.close()
