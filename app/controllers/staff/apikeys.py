"""/api/apikeys: admins create, list and revoke the API keys Dify and other machine clients
send as bearer tokens (the admin page's 接口密钥 and `flask apikey` do the same). A new
key's plaintext is in the create response only; every change is in the audit log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from app.accounts import apikeys, audit
from app.controllers import errors as http_errors
from app.controllers.staff import csrf
from app.controllers.staff.auth import actor, login_required
from app.errors import BadRequest
from app.extensions import db
from app.store import ApiKey

bp = Blueprint("apikeys", __name__, url_prefix="/api/apikeys")
csrf.protect(bp)  # the admin pages' cookie works here too
http_errors.install_staff(bp)


def key_dict(row: ApiKey) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


@bp.get("")
@login_required("admin")
def list_keys() -> Any:
    return jsonify(api_keys=[key_dict(k) for k in apikeys.list_keys()])


@bp.post("")
@login_required("admin")
def create_key() -> Any:
    data = request.get_json(silent=True)
    name = data.get("name") if isinstance(data, dict) else None
    if not isinstance(name, str):
        raise BadRequest('send a JSON object with the key\'s name, e.g. {"name": "dify"}')
    row, plaintext = apikeys.create(name)  # ApiKeyError: 400
    audit.record(actor(), "apikey.create", f"apikey:{row.id}", name=row.name, prefix=row.prefix)
    db.session.commit()
    return jsonify(api_key=key_dict(row), key=plaintext), 201


@bp.delete("/<int:key_id>")
@login_required("admin")
def revoke_key(key_id: int) -> Any:
    row = apikeys.revoke(str(key_id))  # UnknownKey: 404
    audit.record(actor(), "apikey.revoke", f"apikey:{row.id}", name=row.name, prefix=row.prefix)
    db.session.commit()
    return jsonify(api_key=key_dict(row))
