"""POST /dify/retrieval: Dify's External Knowledge API (endpoint setting: PUBLIC_BASE_URL/dify).

Errors follow Dify's documented convention, {"error_code", "error_msg"} (rendered by
app/controllers/errors.py): 1001 malformed Authorization header and 1002 unknown key, both
403 (Dify's registration treats 403 as "authorization failed", so a wrong key is caught
when the API is added), 2001 unknown knowledge_id (404); any other error's code is its
HTTP status. Dify's registration probe posts no body: with a valid key that gets 400,
which Dify accepts.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from app.controllers import errors as http_errors
from app.controllers.api.auth import check_bearer
from app.dify import retrieval as dify_retrieval
from app.errors import BadRequest, Forbidden

bp = Blueprint("dify", __name__, url_prefix="/dify")
http_errors.install_dify(bp)


class _Names(fields.Field):
    """A metadata field's name, or a list of names (Dify's older pages documented
    ``name`` as an array): a non-empty string, or a non-empty list of them."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        names = value if isinstance(value, list) else [value]
        if not names or not all(isinstance(n, str) and 0 < len(n) <= 256 for n in names):
            raise ValidationError("a metadata field name (1-256 characters), or a list of them")
        return value


class _Condition(Schema):
    class Meta:
        unknown = EXCLUDE

    name = _Names(required=True)
    comparison_operator = fields.String(required=True)
    # A string, a number, or a list of strings (in / not in); omitted for empty / not empty.
    value = fields.Raw(load_default=None, allow_none=True)


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


@bp.before_request
def _authenticate() -> None:
    request.max_content_length = current_app.extensions["settings"].api_max_body_bytes
    failure = check_bearer()
    if failure is None:
        return
    if failure.reason == "invalid":
        raise Forbidden("Authorization failed: " + failure.message, code="invalid_api_key")
    raise Forbidden(
        "Invalid Authorization header format. Expected 'Bearer <api-key>' format.",
        code=f"{failure.reason}_api_key",
    )


@bp.post("/retrieval")
def retrieval() -> Response:
    if not request.get_data(cache=True):
        raise BadRequest("empty request body: send the retrieval request as JSON")
    payload: Any = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise BadRequest("the request body must be a JSON object")
    try:
        req = RetrievalRequest().load(payload)
    except ValidationError as exc:
        raise BadRequest(f"invalid request: {exc.messages}") from None
    dify_retrieval.check_condition(req["metadata_condition"])  # BadCondition: 400
    setting = req["retrieval_setting"]
    records = dify_retrieval.retrieve(  # KnowledgeNotFound: 404, error_code 2001
        current_app.extensions["settings"],
        req["knowledge_id"],
        req["query"],
        setting["top_k"],
        setting["score_threshold"],
        req["metadata_condition"],
    )
    return jsonify(records=records)
