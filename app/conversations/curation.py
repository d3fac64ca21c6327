"""What staff do with the unanswered questions, whoever asks: the staff's pages and API
(app/controllers/staff/unanswered.py) and the tools (the OpenAPI tools and /mcp, so a Dify
workflow or agent can draft and file FAQ entries): list the period's groups with the
nearest FAQ entries, write a new entry from a group, attach a group's questions to an
entry as paraphrases, or dismiss them. A change to the FAQ is indexed before it returns
(app/faq/publishing.py) and audited with who made it.
"""

from __future__ import annotations

from typing import Any

from app import resources
from app.conversations import unanswered, vectors
from app.errors import BadRequest
from app.extensions import db
from app.faq import editing, publishing
from app.settings import Settings

MAX_DAYS = 366
MAX_GROUPS = 200
MAX_QUESTIONS = 200


def _suggestions(settings: Settings, groups: list[unanswered.Group]) -> list[list[dict[str, Any]]]:
    """The FAQ entries nearest to each group (by this process's FAQ table), to attach to."""
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


def groups(settings: Settings, days: float, limit: int) -> dict[str, Any]:
    """The period's refused and handed-off questions grouped by meaning, most asked first,
    each with the FAQ entries nearest to it."""
    questions = unanswered.collect(days)
    # Kept vectors first: a cold page embeds only the wordings no one embedded before.
    embed = vectors.stored_first(resources.knowledge_store(settings).embedder)
    found = unanswered.group(questions, embed)
    shown = found[:limit]
    suggestions = _suggestions(settings, shown)
    db.session.rollback()  # read only
    return {
        "days": days,
        "total_groups": len(found),
        "total_questions": sum(g.count for g in found),
        "groups": [unanswered.group_dict(g, s) for g, s in zip(shown, suggestions, strict=True)],
    }


def questions_of(value: Any) -> list[str]:
    """The group's questions that can be paraphrases (one line of plain text, not too
    long): a customer's pasted page or markup in a group does not block the rest."""
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


def new_entry(body: dict[str, Any], questions: list[str], who: str) -> dict[str, Any]:
    """A new FAQ entry (``body``: question, answer, category, paraphrases) with the group's
    ``questions`` as more paraphrases; indexed before it returns."""
    fields = editing.clean_fields(body)
    wordings = dict.fromkeys([*fields["paraphrases"], *questions])
    fields["paraphrases"] = [q for q in wordings if q != fields["question"]]
    record = editing.create(fields, who)
    # The entry's own question is answered from now on too, if customers asked it.
    return _done(record.id, list(dict.fromkeys([fields["question"], *questions])), who)


def attach(
    questions: list[str],
    who: str,
    *,
    entry_id: Any = None,
    doc_id: Any = None,
    question: Any = None,
) -> dict[str, Any]:
    """The group's questions become paraphrases of an entry: ``entry_id``, or an entry of a
    spreadsheet (``doc_id`` and ``question``), which the staff's table takes over."""
    if entry_id is not None:
        if not isinstance(entry_id, int) or isinstance(entry_id, bool):
            raise BadRequest("entry_id must be an integer")
        if not 0 < entry_id < 2**31:  # past PostgreSQL's integer: no such entry, no query
            raise BadRequest("entry_id is not an entry's id")
        record = editing.get(entry_id)
    else:
        if not isinstance(doc_id, str) or not isinstance(question, str) or not doc_id:
            raise BadRequest("send entry_id, or doc_id and question of a spreadsheet's entry")
        record = publishing.adopt(doc_id, question, who)
        db.session.flush()
    paraphrases = [*editing.paraphrases_of(record), *questions]
    editing.change(record, {"paraphrases": paraphrases}, record.version, who)
    return _done(record.id, questions, who)


def dismiss(questions: list[str], who: str) -> int:
    count = unanswered.resolve(questions, "dismissed", who)
    db.session.commit()
    return count
