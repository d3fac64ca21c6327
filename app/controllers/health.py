"""GET /healthz: 200 only when the service can take messages."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from app.services.health import check_all

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    report = check_all(current_app.extensions["settings"])
    ok = all(c["ok"] for c in report.values())
    return jsonify(status="ok" if ok else "unavailable", checks=report), 200 if ok else 503
