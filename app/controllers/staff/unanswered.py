"""/api/unanswered: the refused and handed-off questions of a period, grouped by meaning
(app/conversations/unanswered.py), and what staff do with a group: attach its questions to
an FAQ entry as paraphrases, write a new entry from it, or dismiss it. A change to the FAQ
is indexed before the response (app/faq/publishing.py) and audited with who made it.
Staff sign-in or an API key (Bearer)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request

from app import resources
from app.controllers import errors as http_errors
from app.controllers.staff import csrf
from app.controllers.staff.auth import actor, login_required
from app.conversations import unanswered
from app.errors import BadRequest
from app.extensions import db
from app.faq import editing, publishing

bp = Blueprint("unanswered", __name__, url_prefix="/api/unanswered")
csrf.protect(bp)
http_errors.install_staff(bp)

MAX_DAYS = 366
MAX_GROUPS = 200
MAX_QUESTIONS = 200


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


def _suggestions(groups: list[unanswered.Group]) -> list[list[dict[str, Any]]]:
    """The FAQ entries nearest to each group (by this process's FAQ table), to attach to."""
    settings = current_app.extensions["settings"]
    table = resources.faq_tables(settings).get(wait=False)
    if table is None or not len(table):
        return [[] for _ in groups]
    ids = {(r.doc_id, editing.key_of(r.question)): r.id for r in editing.records()}
    out = []
    for g in groups:
        found = []
        for ev in table.evidence(g.centre, top=3):
            entry = ev.entry
            found.append(
                {
                    "id": ids.get((entry.doc_id, editing.key_of(entry.question))),
                    "doc_id": entry.doc_id,
                    "question": entry.question,
                    "answer": entry.answer[:200],
                    "score": round(ev.match, 4),
                }
            )
        out.append(found)
    return out


@bp.get("")
@login_required(keys=True)
def list_groups() -> Any:
    days = _number("days", 7, 0.01, MAX_DAYS)
    limit = int(_number("limit", 50, 1, MAX_GROUPS))
    questions = unanswered.collect(days)
    settings = current_app.extensions["settings"]
    embed = resources.knowledge_store(settings).embedder.embed_queries
    groups = unanswered.group(questions, embed)
    shown = groups[:limit]
    suggestions = _suggestions(shown)
    db.session.rollback()  # read only
    return jsonify(
        days=days,
        total_groups=len(groups),
        total_questions=sum(g.count for g in groups),
        groups=[unanswered.group_dict(g, s) for g, s in zip(shown, suggestions, strict=True)],
    )


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("send a JSON object")
    return body


def _questions(body: dict[str, Any]) -> list[str]:
    """The group's questions that can be paraphrases (one line of plain text, not too
    long): a customer's pasted page or markup in a group does not block the rest."""
    value = body.get("questions")
    if not isinstance(value, list) or not value:
        raise BadRequest("questions must be a non-empty list of the group's questions")
    if len(value) > MAX_QUESTIONS:
        raise BadRequest(f"questions has more than {MAX_QUESTIONS} items")
    if not all(isinstance(q, str) for q in value):
        raise BadRequest("questions must be strings")
    kept = []
    for q in value:
        try:
            kept.append(editing.question_text(q, "question"))
        except BadRequest:
            continue
    if not kept:
        raise BadRequest("none of the questions can be an FAQ question (plain text, one line)")
    return list(dict.fromkeys(kept))


def _done(record_id: int, questions: list[str], who: str) -> dict[str, Any]:
    unanswered.resolve(questions, "faq", who, faq_id=record_id)
    db.session.commit()
    record = editing.get(record_id)
    indexed = publishing.publish({record.doc_id}, who)
    return {"entry": editing.record_dict(editing.get(record_id)), "index": indexed}


@bp.post("/faq")
@login_required(keys=True)
def new_entry() -> Any:
    """A new FAQ entry from a group: its question, answer and category, the group's
    questions as its paraphrases."""
    body = _body()
    questions = _questions(body)
    fields = editing.clean_fields(body)
    fields["paraphrases"] = list(dict.fromkeys([*fields["paraphrases"], *questions]))
    record = editing.create(fields, actor())
    return jsonify(_done(record.id, questions, actor())), 201


@bp.post("/attach")
@login_required(keys=True)
def attach() -> Any:
    """The group's questions become paraphrases of an entry: ``entry_id``, or an entry of a
    spreadsheet (``doc_id`` and ``question``), which the staff's table takes over."""
    body = _body()
    questions = _questions(body)
    entry_id = body.get("entry_id")
    if entry_id is not None:
        if not isinstance(entry_id, int) or isinstance(entry_id, bool):
            raise BadRequest("entry_id must be an integer")
        record = editing.get(entry_id)
    else:
        doc_id, question = body.get("doc_id"), body.get("question")
        if not isinstance(doc_id, str) or not isinstance(question, str) or not doc_id:
            raise BadRequest("send entry_id, or doc_id and question of a spreadsheet's entry")
        record = publishing.adopt(doc_id, question, actor())
        db.session.flush()
    paraphrases = [*editing.paraphrases_of(record), *questions]
    editing.change(record, {"paraphrases": paraphrases}, record.version, actor())
    return jsonify(_done(record.id, questions, actor()))


@bp.post("/dismiss")
@login_required(keys=True)
def dismiss() -> Any:
    body = _body()
    questions = _questions(body)
    count = unanswered.resolve(questions, "dismissed", actor())
    db.session.commit()
    return jsonify(dismissed=count)
