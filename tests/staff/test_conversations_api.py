"""/api/conversations on the real app and a real PostgreSQL database: the log newest
first, each filter, keyset pages that neither repeat nor skip a row, one customer's thread,
the record behind an answer (sources, scores, timings), personal numbers masked, the
exports (read back), and bad input."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook

from app.extensions import db
from app.store import InboundMessage, OutboundReply
from tests.staff.conftest import STAFF

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
DETAIL = {
    "via": "meaning",
    "entry": "faq-1",
    "question": "可以开发票吗",
    "match": 0.93,
    "retrieval_ms": 12.5,
    "total_ms": 40.1,
    "note": "客户留的 13812345678",
}


def _message(i: int, **fields: object) -> InboundMessage:
    base: dict[str, object] = {
        "channel": "wechat",
        "dedup_key": f"m{i}",
        "account": "gh_test",
        "customer": f"cust{i % 3}",
        "msg_type": "text",
        "content": f"问题{i}",
        "status": "answered",
        "outcome": "generated",
        "created_at": T0 + timedelta(minutes=i),
    }
    base.update(fields)
    return InboundMessage(**base)


@pytest.fixture(scope="module")
def seeded(app: Flask) -> None:
    with app.app_context():
        rows = [_message(i) for i in range(30)]
        rows[5].outcome, rows[6].outcome, rows[7].outcome = "refused", "faq", "handed_off"
        rows[8].channel, rows[9].outcome = "wecom", ""
        rows[10].content = "我的手机 13812345678 能开发票吗"  # stored before masking
        rows[10].outcome_detail = json.dumps(DETAIL, ensure_ascii=False)
        rows[11].content = '=HYPERLINK("http://x")<script>alert(1)</script>'
        rows[12].created_at = rows[13].created_at  # a tie: ordered by id
        db.session.add_all(rows)
        db.session.flush()
        for r in rows:
            sent = r.created_at + timedelta(seconds=2)
            db.session.add(
                OutboundReply(
                    inbound_id=r.id,
                    seq=0,
                    content=f"回复{r.content}",
                    sources=json.dumps([{"source": "faq.xlsx", "section": "发票", "score": 0.91}]),
                    status="sent",
                    sent_at=sent,
                    via="custom",
                )
            )
        db.session.commit()


@pytest.fixture()
def client(app: Flask, seeded: None) -> Iterator[FlaskClient]:
    c = app.test_client()
    r = c.post("/api/auth/login", json={"username": STAFF[0], "password": STAFF[1]})
    c.environ_base["HTTP_X_CSRF_TOKEN"] = r.get_json()["csrf_token"]
    yield c


def _all(client: FlaskClient, query: str, limit: int = 7) -> list[dict]:
    out, cursor = [], ""
    while True:
        r = client.get(f"/api/conversations?limit={limit}&{query}&cursor={cursor}")
        assert r.status_code == 200, r.get_data(as_text=True)
        body = r.get_json()
        out.extend(body["messages"])
        if body["next_cursor"] is None:
            return out
        cursor = body["next_cursor"]


def test_newest_first_in_pages_that_neither_repeat_nor_skip(client: FlaskClient) -> None:
    first = client.get("/api/conversations?limit=7").get_json()
    assert first["total"] == 30 and len(first["messages"]) == 7
    rows = _all(client, "")
    assert len(rows) == 30 and len({r["id"] for r in rows}) == 30
    keys = [(r["created_at"], r["id"]) for r in rows]
    assert keys == sorted(keys, reverse=True)
    assert rows[0]["question"] == "问题29" and rows[0]["reply"] == "回复问题29"
    assert rows[0]["reply_ms"] == 2000


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("outcome=refused", {"问题5"}),
        ("outcome=faq", {"问题6"}),
        ("outcome=handed_off", {"问题7"}),
        ("outcome=pending", {"问题9"}),
        ("channel=wecom", {"问题8"}),
        ("q=问题2", {f"问题{i}" for i in (2, *range(20, 30))}),
        ("q=回复问题17", {"问题17"}),  # the reply's text
        ("q=100%25", set()),  # a LIKE wildcard is literal
        ("since=2026-11-01T08:03:00Z&until=2026-11-01T08:05:00%2B00:00", {"问题3", "问题4"}),
    ],
)
def test_filters(client: FlaskClient, query: str, expected: set[str]) -> None:
    rows = _all(client, query, limit=4)
    assert {r["question"] for r in rows} == expected
    assert client.get(f"/api/conversations?{query}").get_json()["total"] == len(expected)


def test_one_customers_thread(client: FlaskClient) -> None:
    rows = _all(client, "customer=cust1")
    assert len(rows) == 10 and {r["customer"] for r in rows} == {"cust1"}


def test_the_record_behind_an_answer_masked(client: FlaskClient) -> None:
    rows = client.get("/api/conversations?q=能开发票吗").get_json()["messages"]
    (row,) = rows
    assert "13812345678" not in json.dumps(row, ensure_ascii=False)
    assert row["question"] == "我的手机 138****5678 能开发票吗"
    assert row["detail"]["match"] == 0.93 and row["detail"]["retrieval_ms"] == 12.5
    assert row["detail"]["note"] == "客户留的 138****5678"
    assert row["sources"] == [{"source": "faq.xlsx", "section": "发票", "score": 0.91}]
    one = client.get(f"/api/conversations/{row['id']}").get_json()["message"]
    assert one["id"] == row["id"] and one["detail"]["total_ms"] == 40.1


def test_exports_read_back(client: FlaskClient) -> None:
    r = client.get("/api/conversations/export?format=csv&channel=wechat")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(r.get_data().decode("utf-8-sig"))))
    assert rows[0][:5] == ["时间", "渠道", "客户", "问题", "回复"]
    assert len(rows) == 1 + 29  # wecom's one left out
    by_question = {row[3]: row for row in rows[1:]}
    # A customer's formula stays text.
    assert '\'=HYPERLINK("http://x")<script>alert(1)</script>' in by_question
    assert "faq.xlsx / 发票 (0.91)" in by_question["问题6"][6]
    r = client.get("/api/conversations/export?format=xlsx&outcome=refused")
    assert r.status_code == 200
    sheet = load_workbook(io.BytesIO(r.get_data())).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0][3] == "问题" and len(values) == 2 and values[1][3] == "问题5"
    r = client.get("/api/conversations/export?format=xlsx")
    sheet = load_workbook(io.BytesIO(r.get_data())).active
    cells = [c.value for row in sheet.iter_rows() for c in row]
    assert all(not (isinstance(v, str) and v.startswith("=")) for v in cells)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("outcome=maybe", "outcome must be one of"),
        ("channel=<script>", "channel"),
        ("since=yesterday", "ISO 8601"),
        ("since=2026-11-02&until=2026-11-01", "after until"),
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("cursor=abc", "cursor"),
        ("q=" + "x" * 201, "q is longer"),
    ],
)
def test_bad_filters_are_a_400(client: FlaskClient, query: str, words: str) -> None:
    r = client.get(f"/api/conversations?{query}")
    assert r.status_code == 400 and words in r.get_json()["error"]


def test_unknown_id_bad_format_and_no_login(client: FlaskClient, app: Flask) -> None:
    assert client.get("/api/conversations/999999").status_code == 404
    r = client.get("/api/conversations/export?format=pdf")
    assert r.status_code == 400 and "csv or xlsx" in r.get_json()["error"]
    anonymous = app.test_client()
    assert anonymous.get("/api/conversations").status_code == 401
    assert anonymous.get("/api/conversations/export").status_code == 401
