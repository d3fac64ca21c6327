"""GET /openapi.json: the tool API as OpenAPI 3.0.3, generated from the tool registry.

apispec with its marshmallow plugin emits OpenAPI 3.0 natively (`nullable`, never the 3.1
`type: [..., "null"]` lists that crash Dify's importer). Each operation carries its own
operationId, description and requestBody; servers[0] is PUBLIC_BASE_URL, the address Dify
calls. The document is public (schema only, no data): Dify's "import from URL" fetches it
without credentials.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Response, current_app, jsonify

from app.controllers.api.tool_schemas import Error
from app.controllers.api.tools import OPERATIONS
from app.settings import Settings

bp = Blueprint("openapi", __name__)

API_DESCRIPTION = (
    "Tools of the shop's private AI customer service: search the knowledge base, look up "
    "an FAQ, answer a customer's question with sources, read text in images, and hand a "
    "conversation to a person. Authenticate with an API key: in Dify choose "
    "'API Key', header 'Authorization', prefix 'Bearer'."
)


def build_spec(settings: Settings) -> dict[str, Any]:
    spec = APISpec(
        title="WeChat AI customer service tools",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": API_DESCRIPTION},
        servers=[{"url": settings.public_base_url, "description": "this service"}],
        security=[{"bearerAuth": []}],
    )
    spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "description": "API key"}
    )
    spec.components.schema("Error", schema=Error)
    error = {"content": {"application/json": {"schema": "Error"}}}
    for op in OPERATIONS:
        spec.path(
            path=f"/tools{op.path}",
            operations={
                "post": {
                    "operationId": op.operation_id,
                    "summary": op.summary,
                    "description": op.description,
                    "requestBody": {
                        "required": True,
                        "content": {op.content_type: {"schema": op.request}},
                    },
                    "responses": {
                        "200": {
                            "description": "OK",
                            "content": {"application/json": {"schema": op.response}},
                        },
                        "400": {
                            "description": "Invalid input (the message says which; "
                            "fields lists each wrong parameter)",
                            **error,
                        },
                        "401": {"description": "Missing, malformed or revoked API key", **error},
                        "413": {"description": "The request body is too large", **error},
                        "503": {
                            "description": "The knowledge base or the model is unavailable; "
                            "retry later",
                            **error,
                        },
                        "default": {"description": "Any other failure", **error},
                    },
                }
            },
        )
    return spec.to_dict()


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(build_spec(current_app.extensions["settings"]))
