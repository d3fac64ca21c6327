"""/api/unanswered and the FAQ entries it writes, on the real app and a real PostgreSQL
database: grouping by meaning, a new entry from a group, attaching to an entry, dismissing,
the audit trail, and bad input that changes nothing. Indexing itself (Milvus) is the
browser test's (tests/staff/test_loop_browser.py): here ``publish`` is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.extensions import db
from app.faq import publishing
from app.store import AuditEntry, FaqRecord, InboundMessage, UnansweredResolution
from tests.staff.conftest import STAFF

ASKED = [
    ("可以用比特币支付吗？", 3),
    ("你们支持比特币付款吗", 2),
    ("能用比特币买东西吗", 1),
    ("宠物可以带进店里吗", 2),
    ("可以带狗进店吗", 1),
]


@pytest.fixture()
def published(monkeypatch: pytest.MonkeyPatch) -> list[set[str]]:
    calls: list[set[str]] = []
    monkeypatch.setattr(publishing, "publish", lambda ids, who: calls.append(set(ids)) or {})
    return calls


@pytest.fixture()
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.app_context():
        for model in (InboundMessage, FaqRecord, UnansweredResolution, AuditEntry):
            db.session.query(model).delete()
        now = datetime.now(UTC)
        n = 0
        for text, times in ASKED:
            for i in range(times):
                n += 1
                db.session.add(
                    InboundMessage(
                        dedup_key=f"m{n}",
                        customer=f"cust{n % 4}",
                        msg_type="text",
                        content=text,
                        status="answered",
                        outcome="refused" if i % 2 == 0 else "handed_off",
                        created_at=now - timedelta(minutes=n),
                    )
                )
        db.session.add(
            InboundMessage(
                dedup_key="old",
                customer="c",
                msg_type="text",
                content="很久以前的问题",
                status="answered",
                outcome="refused",
                created_at=now - timedelta(days=30),
            )
        )
        db.session.add(
            InboundMessage(
                dedup_key="ok",
                customer="c",
                msg_type="text",
                content="退款多久到账",
                status="answered",
                outcome="faq",
                created_at=now,
            )
        )
        db.session.commit()
    client = app.test_client()
    r = client.post("/api/auth/login", json={"username": STAFF[0], "password": STAFF[1]})
    assert r.status_code == 200
    client.environ_base["HTTP_X_CSRF_TOKEN"] = r.get_json()["csrf_token"]
    yield client


def groups(client: FlaskClient, **params: str) -> list[dict]:
    r = client.get("/api/unanswered", query_string=params)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()["groups"]


def test_questions_are_grouped_by_meaning_most_frequent_first(client: FlaskClient) -> None:
    found = groups(client)
    assert [g["count"] for g in found] == [6, 3]
    assert found[0]["title"] == "可以用比特币支付吗？"
    assert set(found[0]["questions"]) == {t for t, _ in ASKED[:3]}
    assert set(found[1]["questions"]) == {t for t, _ in ASKED[3:]}
    assert found[0]["outcomes"] == {"refused": 4, "handed_off": 2}
    assert all(len(g["examples"]) <= 5 for g in found)
    # a longer period finds the old question too; answered ones never show
    assert sum(g["count"] for g in groups(client, days="60")) == 10


def test_a_new_entry_from_a_group_is_stored_audited_and_published(
    client: FlaskClient, app: Flask, published: list[set[str]]
) -> None:
    group = groups(client)[0]
    r = client.post(
        "/api/unanswered/faq",
        json={
            "questions": group["questions"],
            "question": "可以用比特币支付吗？",
            "answer": "暂不支持比特币，可用微信支付或银行卡。",
            "category": "支付",
        },
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    entry = r.get_json()["entry"]
    assert entry["answer"] == "暂不支持比特币，可用微信支付或银行卡。"
    assert set(entry["paraphrases"]) == {"你们支持比特币付款吗", "能用比特币买东西吗"}
    assert entry["created_by"] == STAFF[0] and entry["version"] == 1
    assert published == [{"staff-faq.csv"}]
    assert [g["title"] for g in groups(client)] == ["宠物可以带进店里吗"]
    with app.app_context():
        actions = {(e.actor, e.action) for e in db.session.query(AuditEntry)}
    assert {(STAFF[0], "faq.create"), (STAFF[0], "unanswered.faq")} <= actions


def test_attach_adds_the_questions_as_paraphrases(
    client: FlaskClient, published: list[set[str]]
) -> None:
    first = groups(client)[0]
    r = client.post(
        "/api/unanswered/faq",
        json={"questions": first["questions"], "question": "比特币", "answer": "不支持。"},
    )
    entry_id = r.get_json()["entry"]["id"]
    pets = groups(client)[0]
    r = client.post(
        "/api/unanswered/attach", json={"questions": pets["questions"], "entry_id": entry_id}
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    entry = r.get_json()["entry"]
    assert {"宠物可以带进店里吗", "可以带狗进店吗"} <= set(entry["paraphrases"])
    assert entry["version"] == 2
    assert groups(client) == []


def test_dismissed_questions_leave_the_list(client: FlaskClient) -> None:
    pets = groups(client)[1]
    r = client.post("/api/unanswered/dismiss", json={"questions": pets["questions"]})
    assert r.status_code == 200 and r.get_json()["dismissed"] == 2
    assert [g["count"] for g in groups(client)] == [6]


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        (
            "/api/unanswered/faq",
            {"questions": ["x"], "question": "问", "answer": ""},
            400,
            "answer",
        ),
        (
            "/api/unanswered/faq",
            {"questions": ["x"], "question": "问", "answer": "a" * 1_000_000},
            400,
            "longer",
        ),
        (
            "/api/unanswered/faq",
            {"questions": ["x"], "question": "<script>alert(1)</script>", "answer": "a"},
            400,
            "HTML",
        ),
        (
            "/api/unanswered/faq",
            {"questions": ["x"], "question": "问", "answer": "<b>a</b>"},
            400,
            "HTML",
        ),
        (
            "/api/unanswered/faq",
            {"questions": [], "question": "问", "answer": "a"},
            400,
            "questions",
        ),
        (
            "/api/unanswered/faq",
            {"questions": ["x"], "question": "=cmd|' /C calc'!A0", "answer": "a"},
            400,
            "formula",
        ),
        ("/api/unanswered/attach", {"questions": ["x"], "entry_id": 999999}, 404, "999999"),
        (
            "/api/unanswered/attach",
            {"questions": ["x"], "doc_id": "nope.csv", "question": "q"},
            404,
            "nope",
        ),
        ("/api/unanswered/attach", {"questions": ["x"], "entry_id": "1"}, 400, "integer"),
        ("/api/unanswered/dismiss", {"questions": "x"}, 400, "list"),
    ],
)
def test_bad_input_is_a_clear_4xx_that_changes_nothing(
    client: FlaskClient,
    app: Flask,
    published: list[set[str]],
    path: str,
    body: dict,
    status: int,
    words: str,
) -> None:
    r = client.post(path, json=body)
    assert r.status_code == status, r.get_data(as_text=True)
    assert words in r.get_json()["error"]
    with app.app_context():
        assert db.session.query(FaqRecord).count() == 0
        assert db.session.query(UnansweredResolution).count() == 0
    assert published == []


def test_a_second_entry_with_the_same_question_is_a_conflict(
    client: FlaskClient, published: list[set[str]]
) -> None:
    body = {"questions": ["可以用比特币支付吗？"], "question": "比特币能用吗", "answer": "不能。"}
    assert client.post("/api/unanswered/faq", json=body).status_code == 201
    r = client.post("/api/unanswered/faq", json=body)
    assert r.status_code == 409 and "already has this question" in r.get_json()["error"]


def test_signed_out_and_cross_site_requests_are_refused(app: Flask) -> None:
    anon = app.test_client()
    assert anon.get("/api/unanswered").status_code == 401
    assert anon.post("/api/unanswered/dismiss", json={"questions": ["x"]}).status_code in (401, 403)


def test_the_page_needs_sign_in_and_escapes_nothing_itself(client: FlaskClient, app: Flask) -> None:
    assert app.test_client().get("/admin/unanswered").status_code == 302
    page = client.get("/admin/unanswered").get_data(as_text=True)
    assert 'data-page="unanswered"' in page and "unanswered.js" in page
