"""/admin/overview and /api/overview: what became of the customers' messages, per day of
the last 7 and 30 days, with the periods' totals and the p95 reply time
(app/conversations/overview.py).

The page is drawn on the server, charts included (app/controllers/staff/charts.py): it
needs no script, so it shows at once and cannot be broken by one. It is a blueprint of its
own under /admin rather than a view of pages.py, with that blueprint's sign-in redirect
(``pages.page``) and security headers. The API (``days`` 7 or 30) returns the same figures,
read only, to staff signed in or an API key (Bearer), like /api/conversations: a report
script or a dashboard reads it without a person's password."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, render_template, request

from app.controllers import errors as http_errors
from app.controllers.staff import charts, csrf, pages
from app.controllers.staff.auth import login_required
from app.conversations import overview
from app.extensions import db

bp = Blueprint("overview", __name__, url_prefix="/api/overview")
csrf.protect(bp)
http_errors.install_staff(bp)

page_bp = Blueprint("overview_page", __name__, url_prefix="/admin")
page_bp.after_request(pages._headers)

#: The rows of the totals table: (key of the figures, name shown).
ROWS = (
    ("messages", "消息"),
    *((key, name) for key, name, _colour in charts.SERIES[:-1]),
)


@page_bp.get("/overview")
@pages.page()
def show() -> Any:
    tz = _timezone()
    periods = []
    for days in overview.PERIODS:
        got = overview.summary(days, tz=tz)
        periods.append(
            {
                **got,
                "outcomes_chart": charts.outcomes_chart(got["per_day"]),
                "p95_chart": charts.p95_chart(got["per_day"]),
            }
        )
    db.session.rollback()
    return render_template(
        "admin/overview.html",
        periods=periods,
        rows=ROWS,
        series=charts.SERIES,
        p95_colour=charts.P95_COLOUR,
        timezone=tz,
        **pages._context(),
    )


@bp.get("")
@login_required(keys=True)
def figures() -> Any:
    days = overview.period_of(request.args.get("days"))
    got = overview.summary(days, tz=_timezone())
    db.session.rollback()  # read only (and the query's transaction-local settings end)
    return jsonify(got)


def _timezone() -> str:
    return current_app.extensions["settings"].business_timezone
