"""Cross-site request forgery: requests that change something must come from this service's
own pages (or from a script, which no browser lets another site pose as).

Three checks, each small and well understood:

- **Where a browser says the request comes from.** Browsers mark every request with
  ``Sec-Fetch-Site`` (over HTTPS and on localhost), and cross-origin POSTs with ``Origin``;
  older ones at least send ``Referer`` unless a page suppresses it. A state-changing request
  marked as coming from another site (``cross-site``, ``same-site``: a sibling subdomain
  is another party), or whose Origin or Referer is not this service, is refused with 403.
  A request with none of them is not a browser's: scripts (curl, the CLI, Dify) go on.
- **Session writes carry the session's token** (``X-CSRF-Token``, checked where the cookie
  is used: app/controllers/staff/auth.py), which another site cannot read.
- **Sign-in takes JSON**, which another site can only send after a CORS preflight that this
  service never grants; a form-encoded sign-in must prove its origin (login CSRF: signing a
  victim into the attacker's account). No token here: one bound to the browser would need
  a cookie before sign-in, and the body's type already does its job.

This service's origin is the request's own (scheme from ``TRUSTED_PROXIES``' ProxyFix) or
PUBLIC_BASE_URL's, for proxies that pass another Host header.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, request

from app.errors import Forbidden

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int] | None:
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError:  # a port that is not a number
        return None
    return parts.scheme, parts.hostname.lower(), port


def _ours(url: str) -> bool:
    origin = _origin(url)
    public = current_app.extensions["settings"].public_base_url
    return origin is not None and origin in (_origin(request.host_url), _origin(public))


def cross_site_reason() -> str | None:
    """Why this request looks like another site's, or None (same origin, or not a browser)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return None if site in ("same-origin", "none") else f"Sec-Fetch-Site is {site}"
    origin = request.headers.get("Origin")
    if origin is not None:
        return None if _ours(origin) else f"Origin {origin[:100]} is another site"
    referer = request.headers.get("Referer")
    if referer:
        return None if _ours(referer) else "the Referer is another site"
    return None


def proven_same_origin() -> bool:
    """True when a browser header positively names this service as the request's origin."""
    if request.headers.get("Sec-Fetch-Site") == "same-origin":
        return True
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    return bool(origin) and _ours(origin)


def refused(reason: str) -> Forbidden:
    """The 403 to raise (rendered by the blueprint's error handlers, app/controllers/errors.py)."""
    return Forbidden(f"cross-site request refused: {reason}")


def protect(bp: Blueprint) -> None:
    """Refuses the blueprint's state-changing requests that another site's page sent."""

    @bp.before_request
    def _same_origin_only() -> None:
        if request.method not in UNSAFE:
            return
        reason = cross_site_reason()
        if reason:
            raise refused(reason)
