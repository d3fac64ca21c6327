"""What every request meets before a controller: text the database cannot hold is refused
with a clear 400, a chunked body over the size limit is a 413, and no error body quotes
SQL or an exception.

A NUL or an unpaired surrogate in a URL (``?q=%00``, a document id), a query parameter, a
form field, a file name, a JSON body or Basic credentials used to reach PostgreSQL and
fail there, as a 500 or a 503 quoting the SQL statement. Checking here, once, covers every
blueprint, present and future: each answers the 400 in its own error format (its
HTTPException handler), the others as ``{"error": ...}``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Request, Response, jsonify, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream

from app.inputs import find_unstorable

log = logging.getLogger(__name__)


class UnstorableText(BadRequest):
    """Text the database cannot hold (its description says which field and why). Rendered
    as ``{"error": description}`` where a blueprint has no HTTPException handler of its
    own (a handler registered here for it would win over the blueprints' formats)."""

    def get_body(self, environ: Any = None, scope: Any = None) -> str:
        return json.dumps({"error": self.description})

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        return [("Content-Type", "application/json")]


def _refuse(value: Any, where: str) -> None:
    problem = find_unstorable(value, where)
    if problem is not None:
        raise UnstorableText(problem)


class _ChunkedBody(LimitedStream):
    """A body without Content-Length (chunked), read up to the limit. Werkzeug's own stream
    stops there silently, so a body over the limit reached the controller cut short and was
    refused as malformed (400); here a byte past the limit makes it a 413."""

    def on_exhausted(self) -> None:
        if self._stream.read(1):
            raise RequestEntityTooLarge()

    def readall(self) -> bytes:
        data = super().readall()
        if self.is_exhausted:
            self.on_exhausted()
        return data


class EdgeRequest(Request):
    """Flask's request, checking JSON bodies and forms as they are read, and the size of
    chunked bodies."""

    @cached_property
    def stream(self) -> Any:
        limit = self.max_content_length
        terminated = "wsgi.input_terminated" in self.environ  # the server de-chunks
        if limit is None or self.content_length is not None or not terminated:
            return super().stream
        return _ChunkedBody(self.environ["wsgi.input"], limit, is_max=True)

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        data = super().get_json(force=force, silent=silent, cache=cache)
        _refuse(data, "")
        return data

    def _load_form_data(self) -> None:
        fresh = "form" not in self.__dict__
        super()._load_form_data()
        if fresh:
            for key, value in self.form.items(multi=True):
                _refuse({key: value}, "")
            for key, upload in self.files.items(multi=True):
                _refuse(upload.filename or "", f"the file name of '{key}'")


def _check_url_and_credentials() -> None:
    _refuse(request.path, "the URL path")
    for key, value in request.args.items(multi=True):
        _refuse({key: value}, "")
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        _refuse(auth.username or "", "the username")
        _refuse(auth.password or "", "the password")


def _database_failed(exc: SQLAlchemyError) -> tuple[Response, int]:
    # The exception names the statement and its parameters: for the log, not the client.
    log.error("database error on %s %s: %s", request.method, request.path, exc)
    return jsonify(error="the database could not complete the request; retry later"), 503


def install(app: Flask) -> None:
    """Makes ``app`` check every request's text and answer database failures plainly."""
    app.request_class = EdgeRequest
    app.before_request(_check_url_and_credentials)
    app.register_error_handler(SQLAlchemyError, _database_failed)
