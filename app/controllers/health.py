"""GET /healthz: 200 only when the service can take messages (app/health.py).
GET /livez: 200 whenever this process serves requests, whatever its dependencies say.

Two answers because they serve two readers. A monitor wants to know that a customer's
message will be answered (/healthz). Kubernetes' probes want to know whether restarting
or unrouting this pod would help: with PostgreSQL or the broker down, every pod fails
/healthz at once, while each can still acknowledge WeChat's callbacks and keep them
(app/messages/spool.py); so the probes of docker/kubernetes/ read /livez."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from app.health import check_all, overall

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    report = check_all(current_app.extensions["settings"], current_app.extensions["celery"])
    status, code = overall(report)
    return jsonify(status=status, checks=report), code


@bp.get("/livez")
def livez() -> tuple[Response, int]:
    return jsonify(status="alive"), 200
