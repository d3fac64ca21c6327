"""/api/conversations: the conversation log (app/conversations/logs.py): every customer
message and its reply, newest first, filtered (``channel``, ``outcome``, ``since``,
``until``, ``q``, ``customer``: one customer's thread), a page at a time (``limit``,
``cursor``: the previous page's ``next_cursor``); one message with its whole record; the
filtered list as CSV or xlsx. Read only. Staff sign-in or an API key (Bearer)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from app.controllers import errors as http_errors
from app.controllers.staff import csrf
from app.controllers.staff.auth import login_required
from app.conversations import export, logs
from app.errors import BadRequest, NotFound
from app.extensions import db

bp = Blueprint("conversations", __name__, url_prefix="/api/conversations")
csrf.protect(bp)
http_errors.install_staff(bp)

#: Rows an export holds at most (newest first); narrow the filters for older ones.
MAX_EXPORT = 50_000
COLUMNS = (
    "时间",
    "渠道",
    "客户",
    "问题",
    "回复",
    "结果",
    "来源",
    "回复用时(ms)",
    "消息ID",
)


def _limit() -> int:
    raw = request.args.get("limit") or "50"
    if not raw.isdigit() or not 1 <= int(raw) <= logs.MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {logs.MAX_LIMIT}")
    return int(raw)


@bp.get("")
@login_required(keys=True)
def list_messages() -> Any:
    filters = logs.filters_from(request.args)
    limit = _limit()
    raw = (request.args.get("cursor") or "").strip()
    cursor = logs.Cursor.parse(raw) if raw else None
    got = logs.page(filters, limit, cursor)
    # The total only on the first page: the pages after it need none.
    total = logs.count(filters) if cursor is None else None
    db.session.rollback()  # read only
    return jsonify(messages=got.rows, next_cursor=got.next_cursor, total=total)


@bp.get("/<int:message_id>")
@login_required(keys=True)
def get_message(message_id: int) -> Any:
    row = logs.get(message_id)
    db.session.rollback()
    if row is None:
        raise NotFound(f"no message {message_id}")
    return jsonify(message=row)


def _sources(row: dict[str, Any]) -> str:
    names = []
    for s in row["sources"]:
        if isinstance(s, dict):
            name = " / ".join(str(s[k]) for k in ("source", "section") if s.get(k))
            names.append(f"{name} ({s.get('score', '')})" if name else "")
    return "; ".join(n for n in names if n)


@bp.get("/export")
@login_required(keys=True)
def export_messages() -> Any:
    fmt = request.args.get("format", "csv")
    if fmt not in ("csv", "xlsx"):
        raise BadRequest("format must be csv or xlsx")
    filters = logs.filters_from(request.args)
    rows = (
        (
            r["created_at"],
            r["channel"],
            r["customer"],
            r["question"],
            r["reply"],
            r["outcome"],
            _sources(r),
            r["reply_ms"],
            r["id"],
        )
        for r in logs.each(filters, MAX_EXPORT)
    )
    if fmt == "csv":
        data, mime = export.to_csv(COLUMNS, rows), export.CSV_MIME
    else:
        data, mime = export.to_xlsx(COLUMNS, rows, "conversations"), export.XLSX_MIME
    db.session.rollback()
    return Response(
        data,
        mimetype=mime,
        headers={"Content-Disposition": f'attachment; filename="conversations.{fmt}"'},
    )
