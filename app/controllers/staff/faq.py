"""/api/faq: every FAQ entry, editable in place (app/faq/editing.py, published at once by
app/faq/publishing.py): list and search, create, edit (question, paraphrases, answer,
category, enabled; naming the version edited: 409 when another edit came first), delete,
take over a spreadsheet's entry for editing (``/adopt``), and export in the columns an
import reads (CSV or xlsx), so a round trip loses nothing. Staff sign-in or an API key
(Bearer), named in the records as "apikey:NAME"."""

from __future__ import annotations

import io
from typing import Any

from flask import Blueprint, Response, jsonify, request

from app.controllers import errors as http_errors
from app.controllers.staff import csrf
from app.controllers.staff.auth import actor, login_required
from app.errors import BadRequest
from app.extensions import db
from app.faq import editing, publishing

bp = Blueprint("faq", __name__, url_prefix="/api/faq")
csrf.protect(bp)
http_errors.install_staff(bp)


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("send a JSON object")
    return body


def _all(query: str | None, category: str | None) -> list[dict[str, Any]]:
    entries = [editing.record_dict(r) for r in editing.records(query, category)]
    for e in publishing.spreadsheet_entries():
        text = " ".join([e["question"], e["answer"], *e["paraphrases"]])
        if (not query or query.lower() in text.lower()) and (
            not category or e["category"] == category
        ):
            entries.append(e)
    return entries


def _published(record_id: int | None, doc_id: str) -> dict[str, Any]:
    index = publishing.publish({doc_id}, actor())
    entry = editing.record_dict(editing.get(record_id)) if record_id is not None else None
    return {"entry": entry, "index": index}


@bp.get("")
@login_required(keys=True)
def list_entries() -> Any:
    q = (request.args.get("q") or "").strip()[:200] or None
    category = (request.args.get("category") or "").strip()[:64] or None
    entries = _all(q, category)
    return jsonify(entries=entries, total=len(entries))


@bp.post("")
@login_required(keys=True)
def create_entry() -> Any:
    record = editing.create(editing.clean_fields(_body()), actor())
    db.session.commit()
    return jsonify(_published(record.id, record.doc_id)), 201


@bp.get("/<int:entry_id>")
@login_required(keys=True)
def get_entry(entry_id: int) -> Any:
    return jsonify(entry=editing.record_dict(editing.get(entry_id)))


@bp.put("/<int:entry_id>")
@login_required(keys=True)
def edit_entry(entry_id: int) -> Any:
    body = _body()
    version = editing.version_of(body)
    fields = editing.clean_fields(body, partial=True)
    record = editing.get(entry_id)
    editing.change(record, fields, version, actor())
    db.session.commit()
    return jsonify(_published(entry_id, record.doc_id))


@bp.delete("/<int:entry_id>")
@login_required(keys=True)
def delete_entry(entry_id: int) -> Any:
    try:
        version = int(request.args.get("version", ""))
    except ValueError:
        raise BadRequest("send ?version= (the entry's version you deleted)") from None
    record = editing.get(entry_id)
    doc_id, kept = record.doc_id, bool(record.base_key)
    editing.remove(record, version, actor())
    db.session.commit()
    return jsonify(deleted=entry_id, disabled_instead=kept, **_published(None, doc_id))


@bp.post("/adopt")
@login_required(keys=True)
def adopt() -> Any:
    """A spreadsheet's entry taken into the staff's table, to edit it here."""
    body = _body()
    doc_id, question = body.get("doc_id"), body.get("question")
    if not isinstance(doc_id, str) or not isinstance(question, str) or not doc_id:
        raise BadRequest("send doc_id and question of a spreadsheet's entry")
    record = publishing.adopt(doc_id, question, actor())
    db.session.commit()
    return jsonify(entry=editing.record_dict(record))


@bp.get("/export")
@login_required(keys=True)
def export() -> Any:
    fmt = request.args.get("format", "csv")
    if fmt not in ("csv", "xlsx"):
        raise BadRequest("format must be csv or xlsx")
    entries = [e for e in _all(None, None) if e["enabled"]]
    if fmt == "csv":
        data, mime = publishing.rows_csv(entries), "text/csv; charset=utf-8"
    else:
        from openpyxl import Workbook

        book = Workbook()
        sheet = book.active
        sheet.append(list(publishing.COLUMNS))
        for row in publishing.export_rows(entries):
            sheet.append(row)
        out = io.BytesIO()
        book.save(out)
        data = out.getvalue()
        mime = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return Response(
        data,
        mimetype=mime,
        headers={"Content-Disposition": f'attachment; filename="faq.{fmt}"'},
    )
