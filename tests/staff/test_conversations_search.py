"""/api/conversations?q= on the real app and PostgreSQL once the search goes by index
(migration 0017's ``search_bigrams``): two-character Chinese, longer and one-character
queries, the question or any reply (a message once), any case, LIKE's wildcards and
escape literal, with the other filters and across keyset pages; and the statements the
code sends can use the two indexes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from app.conversations import logs
from app.extensions import db
from app.store import InboundMessage, OutboundReply
from tests.staff.conftest import STAFF

T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
#: question, replies, channel
ROWS = [
    ("请问退款多久到账", ["退款会在 1-3 个工作日原路退回。"], "wechat"),  # 0: both
    ("钱什么时候退回来", ["您好，退款已受理。", "请留意银行通知。"], "wecom"),  # 1: 2nd reply
    ("退了吗", ["已为您处理"], "wechat"),  # 2: 退 only
    ("款式有哪些", ["有三种款式"], "wechat"),  # 3: 款 only, never 退款
    ("Refund please", ["We REFUND in 3 days"], "kf"),  # 4: any case
    ("打九折还是 100% 返现", ["返现 100% 到账"], "wechat"),  # 5: a literal %
    ("订单号 a_b 查不到", ["请提供订单号"], "wechat"),  # 6: a literal _
    ("订单号 axb 查不到", ["请提供订单号"], "wechat"),  # 7: what _ would match
    ("路径 C:\\退款\\表", [], "wechat"),  # 8: a backslash, no reply
    ("救生员在哪里", ["泳池边的救生员可以帮您"], "wecom"),  # 9: three characters
]


@pytest.fixture(scope="module")
def seeded(app: Flask) -> None:
    with app.app_context():
        for i, (question, replies, channel) in enumerate(ROWS):
            msg = InboundMessage(
                channel=channel,
                dedup_key=f"s{i}",
                account="gh_test",
                customer=f"searcher{i}",
                msg_type="text",
                content=question,
                status="answered",
                outcome="generated",
                created_at=T0 + timedelta(minutes=i),
            )
            db.session.add(msg)
            db.session.flush()
            for seq, reply in enumerate(replies):
                db.session.add(OutboundReply(inbound_id=msg.id, seq=seq, content=reply))
        db.session.commit()


@pytest.fixture()
def client(app: Flask, seeded: None) -> Iterator[FlaskClient]:
    client = app.test_client()
    r = client.post("/api/auth/login", json={"username": STAFF[0], "password": STAFF[1]})
    assert r.status_code == 200
    yield client


def found(client: FlaskClient, **params: str) -> tuple[list[str], int]:
    params.setdefault("until", (T0 + timedelta(days=1)).isoformat())
    params.setdefault("since", T0.isoformat())
    body = client.get("/api/conversations", query_string=params).get_json()
    return [m["question"] for m in body["messages"]], body["total"]


def questions(*indexes: int) -> list[str]:
    return [ROWS[i][0] for i in sorted(indexes, reverse=True)]  # newest first


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("退款", (0, 1, 8)),  # the question, a second reply, a backslash beside it
        ("退", (0, 1, 2, 8)),  # one character: no piece to look up, still found
        ("救生员", (9,)),
        ("生员在", (9,)),
        ("REFUND", (4,)),
        ("refund please", (4,)),
        ("100%", (5,)),  # % is literal
        ("%", (5,)),
        ("a_b", (6,)),  # _ is literal: "axb" is not found
        ("_", (6,)),
        ("C:\\退", (8,)),  # the escape character is literal too
        ("款式", (3,)),
        ("退款退款", ()),
        ("不存在", ()),
    ],
)
def test_search_finds_the_question_or_a_reply_once(
    client: FlaskClient, q: str, expected: tuple[int, ...]
) -> None:
    got, total = found(client, q=q)
    assert got == questions(*expected)
    assert total == len(expected)


def test_search_with_other_filters_and_across_pages(client: FlaskClient) -> None:
    assert found(client, q="退款", channel="wecom") == (questions(1), 1)
    assert found(client, q="订单号", customer="searcher7") == (questions(7), 1)
    seen: list[str] = []
    params = {"q": "订单号", "limit": "1"}
    cursor = None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        body = client.get("/api/conversations", query_string=query).get_json()
        seen += [m["question"] for m in body["messages"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == questions(6, 7)


def test_the_search_statements_can_use_both_indexes(app: Flask) -> None:
    """What the code sends (captured), explained with sequential scans priced out: a
    two-character search reads each table through its bigram index."""
    with app.app_context():
        engine = db.engine
        sent: list[tuple[str, object]] = []

        def seen(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ANN202
            sent.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", seen)
        try:
            logs.count(logs.Filters(text="退款"))
            logs.page(logs.Filters(text="退款"), 10)
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        db.session.rollback()
        assert len(sent) >= 2
        with engine.connect() as conn:
            conn.exec_driver_sql("SET enable_seqscan = off")
            for statement, parameters in sent[:2]:
                plan = "\n".join(
                    row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters)
                )
                assert "ix_inbound_content_bigrams" in plan, plan
                assert "ix_reply_content_bigrams" in plan, plan
