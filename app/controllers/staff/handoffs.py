"""/api/handoffs: the hand-off inbox (app/conversations/handoffs.py): the requests of
customers handed to a person, newest first, with each customer's recent thread and the
counts by state; staff take a request and close it (409 when someone else came first).
Staff sign-in or an API key (Bearer)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from app.controllers import errors as http_errors
from app.controllers.staff import csrf
from app.controllers.staff.auth import actor, login_required
from app.conversations import handoffs
from app.errors import BadRequest
from app.extensions import db

bp = Blueprint("handoffs", __name__, url_prefix="/api/handoffs")
csrf.protect(bp)
http_errors.install_staff(bp)

MAX_LIMIT = 100
#: ``state`` of the list: one state, "active" (open and taken: the default) or "all".
STATE_CHOICES = {
    **{s: (s,) for s in handoffs.STATES},
    "active": tuple(str(s) for s in handoffs.ACTIVE),
    "all": handoffs.STATES,
}


def _whole(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name) or str(default)
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


@bp.get("")
@login_required(keys=True)
def list_requests() -> Any:
    state = request.args.get("state") or "active"
    if state not in STATE_CHOICES:
        raise BadRequest(f"state must be one of {', '.join(STATE_CHOICES)}")
    source = (request.args.get("source") or "").strip() or None
    if source is not None and (len(source) > 32 or not source.isalnum()):
        raise BadRequest("source must be a channel's name (wechat, wecom, kf) or dify")
    limit = _whole("limit", 50, 1, MAX_LIMIT)
    before = _whole("cursor", 0, 1, 2**31) if request.args.get("cursor") else None
    rows, next_cursor = handoffs.listing(STATE_CHOICES[state], source, limit, before)
    counts = handoffs.counts()
    db.session.rollback()  # read only
    return jsonify(
        handoffs=rows,
        counts=counts,
        next_cursor=str(next_cursor) if next_cursor is not None else None,
    )


@bp.get("/counts")
@login_required(keys=True)
def counts() -> Any:
    found = handoffs.counts()
    db.session.rollback()
    return jsonify(counts=found)


@bp.get("/<int:request_id>")
@login_required(keys=True)
def get_request(request_id: int) -> Any:
    row = handoffs.get(request_id)
    found = handoffs.as_dict(row, handoffs.thread(row))
    db.session.rollback()
    return jsonify(handoff=found)


@bp.post("/<int:request_id>/take")
@login_required(keys=True)
def take(request_id: int) -> Any:
    row = handoffs.take(request_id, actor())
    return jsonify(handoff=handoffs.as_dict(row), counts=handoffs.counts())


@bp.post("/<int:request_id>/close")
@login_required(keys=True)
def close(request_id: int) -> Any:
    row = handoffs.close(request_id, actor())
    return jsonify(handoff=handoffs.as_dict(row), counts=handoffs.counts())
