"""/api/unanswered: the refused and handed-off questions of a period, grouped by meaning
(app/conversations/unanswered.py), and what staff do with a group: attach its questions to
an FAQ entry as paraphrases, write a new entry from it, or dismiss it. A change to the FAQ
is indexed before the response (app/faq/publishing.py) and audited with who made it.
Staff sign-in or an API key (Bearer). What each does: app/conversations/curation.py."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request

from app.controllers import errors as http_errors
from app.controllers.staff import csrf
from app.controllers.staff.auth import actor, login_required
from app.conversations import curation
from app.errors import BadRequest

bp = Blueprint("unanswered", __name__, url_prefix="/api/unanswered")
csrf.protect(bp)
http_errors.install_staff(bp)


def _number(name: str, default: float, low: float, high: float) -> float:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a number") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be from {low:g} to {high:g}")
    return value


@bp.get("")
@login_required(keys=True)
def list_groups() -> Any:
    days = _number("days", 7, 0.01, curation.MAX_DAYS)
    limit = int(_number("limit", 50, 1, curation.MAX_GROUPS))
    return jsonify(curation.groups(current_app.extensions["settings"], days, limit))


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("send a JSON object")
    return body


@bp.post("/faq")
@login_required(keys=True)
def new_entry() -> Any:
    """A new FAQ entry from a group: its question, answer and category, the group's
    questions as its paraphrases."""
    body = _body()
    questions = curation.questions_of(body.get("questions"))
    return jsonify(curation.new_entry(body, questions, actor())), 201


@bp.post("/attach")
@login_required(keys=True)
def attach() -> Any:
    body = _body()
    questions = curation.questions_of(body.get("questions"))
    found = curation.attach(
        questions,
        actor(),
        entry_id=body.get("entry_id"),
        doc_id=body.get("doc_id"),
        question=body.get("question"),
    )
    return jsonify(found)


@bp.post("/dismiss")
@login_required(keys=True)
def dismiss() -> Any:
    questions = curation.questions_of(_body().get("questions"))
    return jsonify(dismissed=curation.dismiss(questions, actor()))
