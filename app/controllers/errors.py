"""Every JSON error body of the HTTP APIs, rendered in one place per audience.

Services raise ``app.errors.ServiceError`` (status, code, a message safe to show) and the
controllers let it propagate; ``install`` registers, on each blueprint of an audience, the
handlers that turn it, Werkzeug's HTTP errors and anything unexpected into that
audience's format:

============================  ======================================  =====================
audience                      blueprints                              body
============================  ======================================  =====================
staff console (admin page,    /api/auth, /api/apikeys,                ``{"error": message,
scripts with Basic auth)      /api/knowledge                          ...extra}`` (admin.js
                                                                      shows ``error``)
Dify custom tools             /tools                                  ``{"error": code,
                                                                      "message": ...}`` (the
                                                                      Error schema of
                                                                      /openapi.json)
Dify External Knowledge API   /dify                                   ``{"error_code": int,
                                                                      "error_msg": str}``
OpenAI-compatible             /v1                                     ``{"error": {"message",
                                                                      "type", "param",
                                                                      "code"}}``
============================  ======================================  =====================

The channels' callbacks (/wechat, /wecom) are not here: WeChat and WeCom get an empty
200, "success" or a 4xx with a reason, as app/channels/callbacks.py answers them. Other
blueprints (/healthz, the admin pages) keep Flask's defaults, and a database failure there
is a plain 503 (app/controllers/edge.py).

An exception that is not a ServiceError or an HTTP error is logged with a request id, and
the body is a generic message naming that id (also in the ``X-Request-Id`` header): never
the exception's text, which can quote SQL statements, file paths or a driver's words. A
database or knowledge-store outage is a 503 saying so; anything else is a 500, or a 503
for the staff console, whose pages tell staff to retry (the knowledge API always answered
its failures so).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app.errors import ServiceError, Unavailable
from app.knowledge.store import KnowledgeStoreError

log = logging.getLogger(__name__)

Render = Callable[[ServiceError], dict[str, Any]]


def request_id() -> str:
    """This request's id, made on first use: it names a logged failure in the log and in
    the body the caller sees."""
    rid = g.get("request_id")
    if rid is None:
        rid = g.request_id = uuid.uuid4().hex[:16]
    return rid


# --- one renderer per audience --------------------------------------------------------------


def staff(exc: ServiceError) -> dict[str, Any]:
    """The staff console (/api/*): ``{"error": message}``, plus the error's extra fields
    (a conflicting upload's ``document_id``)."""
    return {"error": exc.message, **exc.extra}


def tool(exc: ServiceError) -> dict[str, Any]:
    """The tool API: the Error schema /openapi.json publishes (``fields`` for
    invalid_request)."""
    return {"error": exc.code, "message": exc.message, **exc.extra}


#: Dify's documented error codes; any other error's ``error_code`` is its HTTP status.
DIFY_CODES = {
    "missing_api_key": 1001,
    "malformed_api_key": 1001,
    "invalid_api_key": 1002,
    "knowledge_not_found": 2001,
}


def dify(exc: ServiceError) -> dict[str, Any]:
    """Dify's External Knowledge API: ``{"error_code", "error_msg"}`` and nothing else."""
    return {"error_code": DIFY_CODES.get(exc.code, exc.status), "error_msg": exc.message}


#: The codes OpenAI's own API uses that /v1 reports; others leave ``code`` null.
OPENAI_CODES = frozenset({"invalid_api_key", "model_not_found"})


def openai(exc: ServiceError) -> dict[str, Any]:
    """OpenAI's error object; ``type`` is server_error for 5xx, invalid_request_error
    otherwise."""
    kind = "server_error" if exc.status >= 500 else "invalid_request_error"
    code = exc.code if exc.code in OPENAI_CODES else None
    return {"error": {"message": exc.message, "type": kind, "param": None, "code": code}}


# --- what is not a ServiceError ---------------------------------------------------------------


def from_http(exc: HTTPException) -> ServiceError:
    """Werkzeug's HTTP error (a 405, a malformed body, text the database cannot hold) with
    its status and words; its code is its name ("bad_request")."""
    name = (exc.name or "error").lower().replace(" ", "_")
    return ServiceError(exc.description or exc.name, status=exc.code or 400, code=name)


def unexpected(exc: Exception, status: int = 500) -> ServiceError:
    """What the caller hears of a failure nobody raised on purpose: logged with the request
    id; the message names the id and quotes nothing of the exception."""
    rid = request_id()
    where = f"{request.method} {request.path} (request {rid})"
    if isinstance(exc, SQLAlchemyError):
        # The exception names the statement and its parameters: for the log only.
        log.error("database error on %s: %s", where, exc)
        message = f"the database is unavailable; retry later (request {rid})"
        return Unavailable(message, code="database_unavailable", headers={"X-Request-Id": rid})
    if isinstance(exc, KnowledgeStoreError):
        log.error("knowledge store failed on %s: %s", where, exc)
        message = f"the knowledge base is unavailable: {exc.client_message()} (request {rid})"
        return Unavailable(message, code="knowledge_unavailable", headers={"X-Request-Id": rid})
    log.exception("unexpected error on %s", where)
    return ServiceError(
        f"the request failed on an internal error; retry later (request {rid}: the "
        "operator's log has the details)",
        status=status,
        code="internal_error",
        headers={"X-Request-Id": rid},
    )


def respond(exc: ServiceError, render: Render) -> Response:
    resp = jsonify(render(exc))
    resp.status_code = exc.status
    resp.headers.update(exc.headers)
    return resp


def install(
    bp: Blueprint,
    render: Render,
    *,
    unexpected_status: int = 500,
    http: Callable[[HTTPException], ServiceError] = from_http,
) -> None:
    """Renders every error of ``bp`` with ``render``: ServiceErrors as raised, HTTP errors
    through ``http``, anything else through ``unexpected``."""

    @bp.errorhandler(ServiceError)
    def _service(exc: ServiceError) -> Response:
        return respond(exc, render)

    @bp.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        return respond(http(exc), render)

    @bp.errorhandler(Exception)
    def _other(exc: Exception) -> Response:
        return respond(unexpected(exc, unexpected_status), render)


# --- the audiences --------------------------------------------------------------------------


def install_staff(bp: Blueprint) -> None:
    """/api/auth, /api/apikeys, /api/knowledge."""
    install(bp, staff, unexpected_status=503)


def _tool_http(exc: HTTPException) -> ServiceError:
    if isinstance(exc, RequestEntityTooLarge):
        message = f"the request body is over {request.max_content_length} bytes"
        return ServiceError(message, status=413, code="too_large")
    return from_http(exc)


def install_tools(bp: Blueprint) -> None:
    """/tools/* (marshmallow's ValidationError is the tool controller's own: it knows the
    schema's fields)."""
    install(bp, tool, http=_tool_http)


def install_dify(bp: Blueprint) -> None:
    """/dify (Dify's External Knowledge API)."""
    install(bp, dify)


def install_openai(bp: Blueprint) -> None:
    """/v1 (OpenAI-compatible)."""
    install(bp, openai)
