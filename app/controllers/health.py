"""GET /healthz: 200 only when the service can take messages (app/health.py)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from app.health import check_all, overall

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    report = check_all(current_app.extensions["settings"], current_app.extensions["celery"])
    status, code = overall(report)
    return jsonify(status=status, checks=report), code
