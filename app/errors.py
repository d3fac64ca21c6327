"""Errors the service reports on purpose: a message safe to show, the HTTP status it maps
to, and a stable code.

Services and domain modules raise a ``ServiceError`` (a subclass, or an exception of their
own that also is one, like ``BadFile``); none of them builds an HTTP response. Each
audience's controllers render it in their own wire format, in one place:
app/controllers/errors.py (the staff console's ``{"error": message}``, the tool API's
``{"error": code, "message": ...}``, Dify's ``{"error_code", "error_msg"}``, OpenAI's
``{"error": {...}}``). The channels' callbacks (/wechat, /wecom) answer WeChat and WeCom
as they always have (app/channels/callbacks.py).

Anything else that escapes a controller is a bug or an outage: it is logged with a request
id, and the caller gets a generic message naming that id, never the exception's text
(which can quote SQL, file paths or a driver's words).

This module imports nothing of Flask's, so the domain modules that raise these errors stay
free of the web layer.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A failure the caller should hear about: ``str(exc)`` is the message to show,
    ``status`` the HTTP status, ``code`` a stable machine-readable name (the tool API's
    ``error`` field). ``extra`` holds more fields for the body (a conflicting document's
    id), ``headers`` response headers (``Retry-After``, ``WWW-Authenticate``)."""

    status: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.headers = dict(headers or {})
        self.extra = extra


class BadRequest(ServiceError):
    """The request is malformed or a value is out of range; the message says which."""

    status, code = 400, "invalid_request"


class Unauthorized(ServiceError):
    """No credentials, or wrong ones."""

    status, code = 401, "unauthorized"


class Forbidden(ServiceError):
    """Signed in, but not allowed (or a cross-site request)."""

    status, code = 403, "forbidden"


class NotFound(ServiceError):
    status, code = 404, "not_found"


class Conflict(ServiceError):
    status, code = 409, "conflict"


class PayloadTooLarge(ServiceError):
    status, code = 413, "too_large"


class UnsupportedMediaType(ServiceError):
    status, code = 415, "unsupported_media_type"


class Unprocessable(ServiceError):
    """Well-formed, but the content cannot be used (a damaged file)."""

    status, code = 422, "unprocessable"


class TooManyRequests(ServiceError):
    status, code = 429, "too_many_requests"


class Unavailable(ServiceError):
    """A store or worker the request needs is down: retry later."""

    status, code = 503, "unavailable"


def shown_text(exc: BaseException, fallback: str) -> str:
    """What of ``exc`` may be stored where staff read it (a document's or a reindex run's
    error, on the admin page): a ServiceError's message, or the client message of an error
    that has one (the knowledge store's, which hides the driver's words); for anything else
    ``fallback``, since its text can quote SQL, file paths or a driver's error. Log the
    exception itself."""
    if isinstance(exc, ServiceError):
        return exc.message
    client_message = getattr(exc, "client_message", None)
    if callable(client_message):
        return str(client_message())
    return fallback
