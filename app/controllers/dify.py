"""POST /dify/retrieval: Dify's External Knowledge API (endpoint setting: PUBLIC_BASE_URL/dify).

Errors follow Dify's documented convention, {"error_code", "error_msg"}: 1001 malformed
Authorization header and 1002 unknown key, both 403 (Dify's registration treats 403 as
"authorization failed", so a wrong key is caught when the API is added), 2001 unknown
knowledge_id (404). Dify's registration probe posts no body: with a valid key that gets
400, which Dify accepts.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from werkzeug.exceptions import HTTPException

from app.controllers.api_auth import check_bearer
from app.knowledge.store import KnowledgeStoreError
from app.services import dify_retrieval

bp = Blueprint("dify", __name__, url_prefix="/dify")
log = logging.getLogger(__name__)


class _Condition(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=256))
    comparison_operator = fields.String(required=True)
    value = fields.Raw(load_default=None)


class _MetadataCondition(Schema):
    class Meta:
        unknown = EXCLUDE

    logical_operator = fields.String(load_default="and", validate=validate.OneOf(["and", "or"]))
    conditions = fields.List(fields.Nested(_Condition), load_default=list)


class _Setting(Schema):
    class Meta:
        unknown = EXCLUDE

    top_k = fields.Integer(required=True, validate=validate.Range(min=1, max=1000))
    score_threshold = fields.Float(load_default=0.0, validate=validate.Range(min=0.0, max=1.0))


class RetrievalRequest(Schema):
    class Meta:
        unknown = EXCLUDE  # Dify may add fields; the documented ones are checked

    knowledge_id = fields.String(required=True, validate=validate.Length(min=1, max=1024))
    query = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    retrieval_setting = fields.Nested(_Setting, required=True)
    metadata_condition = fields.Nested(_MetadataCondition, load_default=None, allow_none=True)


def _error(status: int, code: int, message: str) -> tuple[Response, int]:
    return jsonify(error_code=code, error_msg=message), status


@bp.before_request
def _authenticate() -> tuple[Response, int] | None:
    request.max_content_length = current_app.extensions["settings"].api_max_body_bytes
    failure = check_bearer()
    if failure is None:
        return None
    if failure.reason == "invalid":
        return _error(403, 1002, "Authorization failed: " + failure.message)
    return _error(
        403, 1001, "Invalid Authorization header format. Expected 'Bearer <api-key>' format."
    )


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException) -> tuple[Response, int]:
    return _error(exc.code or 400, exc.code or 400, exc.description or exc.name)


@bp.post("/retrieval")
def retrieval() -> tuple[Response, int] | Response:
    if not request.get_data(cache=True):
        return _error(400, 400, "empty request body: send the retrieval request as JSON")
    payload: Any = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return _error(400, 400, "the request body must be a JSON object")
    try:
        req = RetrievalRequest().load(payload)
        dify_retrieval.check_condition(req["metadata_condition"])
    except ValidationError as exc:
        return _error(400, 400, f"invalid request: {exc.messages}")
    except dify_retrieval.BadCondition as exc:
        return _error(400, 400, str(exc))
    setting = req["retrieval_setting"]
    try:
        records = dify_retrieval.retrieve(
            current_app.extensions["settings"],
            req["knowledge_id"],
            req["query"],
            setting["top_k"],
            setting["score_threshold"],
            req["metadata_condition"],
        )
    except dify_retrieval.KnowledgeNotFound:
        return _error(404, 2001, f"The knowledge does not exist: {req['knowledge_id']!r}")
    except KnowledgeStoreError as exc:
        log.error("retrieval failed: %s", exc)
        return _error(503, 503, f"the knowledge base is unavailable: {exc.client_message()}")
    return jsonify(records=records)
