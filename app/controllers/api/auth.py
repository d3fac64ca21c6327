"""Bearer API keys for the machine-facing endpoints (tools, /dify, /v1).

Each blueprint renders the failure in its own protocol's error format; the check itself is
shared. Open without a key: /healthz and /metrics (probes and scrapers, no customer or
knowledge data), /openapi.json (the schema only, which Dify's importer fetches without
credentials) and /wechat (WeChat's own signature).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g, request

from app.accounts import apikeys

HOW_TO = (
    "send 'Authorization: Bearer <key>' (in Dify: authorization type API Key, header "
    "Authorization, prefix Bearer); admins create keys with `flask apikey create NAME`"
)


@dataclass(frozen=True)
class AuthFailure:
    #: "missing" (no header), "malformed" (not a Bearer token) or "invalid" (unknown/revoked)
    reason: str
    message: str


def check_bearer() -> AuthFailure | None:
    """Authenticates the current request; on success the key's id is in `g.api_key_id`."""
    header = request.headers.get("Authorization", "").strip()
    if not header:
        return AuthFailure("missing", f"missing API key: {HOW_TO}")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return AuthFailure("malformed", f"the Authorization header is not 'Bearer <key>': {HOW_TO}")
    key_id = apikeys.verify(token, trust_s=current_app.extensions["settings"].api_key_cache_s)
    if key_id is None:
        return AuthFailure("invalid", "the API key is unknown or revoked")
    g.api_key_id = key_id
    return None
