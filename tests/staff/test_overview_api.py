"""/api/overview, /admin/overview and the overview gauges of /metrics on the real app and
a real PostgreSQL database: messages seeded across days and outcomes give the counts and
the p95 reply times worked out by hand (tests/staff/overview_seed.py), per day and for
the last 7 and 30 days; SQLite counts the same; ``days`` other than 7 or 30 is a 400 in the
staff APIs' shape; no sign-in is a 401 (the page: a redirect to sign in), an API key
reads it; /metrics shows the gauges, keeps them 30 s, and is served without them while
the database is down."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.accounts import apikeys
from app.conversations import overview
from app.extensions import db
from app.settings import ConfigError, load_settings
from app.store import InboundMessage
from tests.staff.conftest import STAFF
from tests.staff.overview_seed import EXPECTED_DAY_1, EXPECTED_TOTALS, HOSTILE, day, seed
from tests.support import free_port


@pytest.fixture(scope="module")
def seeded(app: Flask) -> Flask:
    with app.app_context():
        seed()
    return app


@pytest.fixture()
def client(seeded: Flask) -> Iterator[FlaskClient]:
    c = seeded.test_client()
    r = c.post("/api/auth/login", json={"username": STAFF[0], "password": STAFF[1]})
    assert r.status_code == 200
    yield c


def _picked(figures: dict, keys: dict) -> dict:
    return {k: figures[k] for k in keys}


@pytest.mark.parametrize("days", [7, 30])
def test_the_totals_are_the_ones_worked_out_by_hand(client: FlaskClient, days: int) -> None:
    r = client.get(f"/api/overview?days={days}")
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["days"] == days and body["timezone"] == "Asia/Shanghai"
    expected = EXPECTED_TOTALS[days]
    assert _picked(body["totals"], expected) == expected
    outcomes = body["totals"]["outcomes"]
    assert outcomes["pending"] == 1 and outcomes["rate_limited"] == 1
    assert sum(outcomes.values()) == expected["messages"]
    # Every day listed, oldest first, today last; days without messages are zeros.
    per_day = body["per_day"]
    assert [d["day"] for d in per_day] == [
        day(before).date().isoformat() for before in range(days - 1, -1, -1)
    ]
    assert sum(d["messages"] for d in per_day) == expected["messages"]
    today = per_day[-1]
    assert today["messages"] == 0 and today["p95_reply_ms"] is None and today["reply_sent"] == 0


def test_each_day_has_its_own_counts_and_p95(client: FlaskClient) -> None:
    per_day = {d["day"]: d for d in client.get("/api/overview?days=30").get_json()["per_day"]}
    first = per_day[day(1).date().isoformat()]
    assert _picked(first, EXPECTED_DAY_1) == EXPECTED_DAY_1
    second = per_day[day(2).date().isoformat()]
    assert (second["messages"], second["generated"], second["p95_reply_ms"]) == (2, 1, 20_000)
    assert second["outcomes"]["rate_limited"] == 1
    assert per_day[day(29).date().isoformat()]["handed_off"] == 1
    assert day(30).date().isoformat() not in per_day


def test_the_default_is_7_days_and_other_periods_are_refused(client: FlaskClient) -> None:
    assert client.get("/api/overview").get_json()["days"] == 7
    for bad in ("14", "abc", "7.0", "-7", "30x", "0"):
        r = client.get(f"/api/overview?days={bad}")
        assert r.status_code == 400, bad
        assert r.get_json() == {"error": "days must be one of 7, 30"}


def test_sign_in_or_an_api_key_is_needed(seeded: Flask) -> None:
    anonymous = seeded.test_client()
    r = anonymous.get("/api/overview?days=7")
    assert r.status_code == 401 and r.get_json() == {"error": "login required"}
    wrong = anonymous.get("/api/overview", headers={"Authorization": "Bearer wxcs_not-a-key"})
    assert wrong.status_code == 401
    page = anonymous.get("/admin/overview")
    assert page.status_code == 302 and "/admin/login" in page.headers["Location"]
    with seeded.app_context():
        _row, key = apikeys.create("dashboard")
        db.session.commit()
    r = anonymous.get("/api/overview?days=30", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200 and r.get_json()["totals"]["messages"] == 14


def test_the_page_shows_the_totals_and_draws_the_days(client: FlaskClient) -> None:
    r = client.get("/admin/overview")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert 'aria-current="page">概览' in html and "Asia/Shanghai" in html
    assert html.count('class="chart outcomes-chart"') == 2
    assert html.count('data-outcome="faq"') == 2 + 2  # days 1 and 6, in both periods
    assert '<td class="num" data-days="30">51.0 秒</td>' in html
    assert HOSTILE not in html and "<script>" not in html  # no message text is shown at all
    assert "script-src" not in r.headers["Content-Security-Policy"]  # 'self' only
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]


def test_sqlite_counts_the_same(tmp_path: Path, client: FlaskClient) -> None:
    expected = {days: client.get(f"/api/overview?days={days}").get_json() for days in (7, 30)}
    lite = create_app(
        load_settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'lite.db'}")
    )
    with lite.app_context():
        db.create_all()
        seed()
        for days in (7, 30):
            got = overview.summary(days)
            assert got["totals"] == expected[days]["totals"]
            assert got["per_day"] == expected[days]["per_day"]
        db.engine.dispose()


def _gauge(text: str, line: str) -> float | None:
    for row in text.splitlines():
        if row.startswith(line + " "):
            return float(row.rsplit(" ", 1)[1])
    return None


def test_metrics_show_the_gauges_and_keep_them_30_s(seeded: Flask) -> None:
    recent = seeded.extensions["metrics.recent"]
    clock = [1000.0]
    recent.clock, recent._read_at = lambda: clock[0], None
    text = seeded.test_client().get("/metrics").get_data(as_text=True)
    assert _gauge(text, 'customer_messages_recent{days="7"}') == 11
    assert _gauge(text, 'customer_messages_recent{days="30"}') == 14
    assert _gauge(text, 'answer_outcomes_recent{days="7",outcome="faq"}') == 3
    assert _gauge(text, 'answer_outcomes_recent{days="30",outcome="handed_off"}') == 2
    assert _gauge(text, 'answer_outcomes_recent{days="30",outcome="pending"}') == 1
    assert _gauge(text, 'reply_seconds_p95_recent{days="7"}') == 17
    assert _gauge(text, 'reply_seconds_p95_recent{days="30"}') == 51

    with seeded.app_context():
        extra = InboundMessage(
            channel="wechat", dedup_key="metrics-extra", customer="o1", msg_type="text",
            outcome="faq", created_at=day(3),
        )  # fmt: skip
        db.session.add(extra)
        db.session.commit()
    try:
        clock[0] += 29
        text = seeded.test_client().get("/metrics").get_data(as_text=True)
        assert _gauge(text, 'customer_messages_recent{days="7"}') == 11  # cached
        clock[0] += 2
        text = seeded.test_client().get("/metrics").get_data(as_text=True)
        assert _gauge(text, 'customer_messages_recent{days="7"}') == 12  # read again
    finally:
        with seeded.app_context():
            db.session.query(InboundMessage).filter_by(dedup_key="metrics-extra").delete()
            db.session.commit()
        recent._read_at = None


def test_metrics_are_served_without_the_gauges_while_the_database_is_down(
    tmp_path: Path,
) -> None:
    dead = create_app(
        load_settings(
            data_dir=tmp_path,
            database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere",
        )
    )
    r = dead.test_client().get("/metrics")
    assert r.status_code == 200
    assert "customer_messages_recent" not in r.get_data(as_text=True)
    assert "answer_outcomes_recent" not in r.get_data(as_text=True)


def test_days_are_the_business_days() -> None:
    """20:00 UTC is already the next day in Beijing: the day a staff member there lives."""
    now = datetime(2026, 12, 6, 20, 0, tzinfo=UTC)
    days, since = overview.window(1, now, "Asia/Shanghai")
    assert days == [date(2026, 12, 7)] and since == datetime(2026, 12, 6, 16, 0, tzinfo=UTC)
    days, since = overview.window(1, now, "UTC")
    assert days == [date(2026, 12, 6)] and since == datetime(2026, 12, 6, 0, 0, tzinfo=UTC)
    with pytest.raises(ConfigError, match="unknown time zone"):
        load_settings(business_timezone="Mars/Olympus_Mons")
