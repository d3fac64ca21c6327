"""/api/handoffs on the real app and a real PostgreSQL database: a WeChat customer writing
"人工" through the real callback is one request in the inbox (however often they write
it), with their recent thread; take and close with who and when; a second take or a close
of a closed request is a 409 that changes nothing; unknown ids, bad filters, no login; the
page's header counts."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.accounts import users
from app.extensions import db
from app.store import AuditEntry, HandoffRequest, InboundMessage
from tests.staff.conftest import STAFF

TOKEN = "handofftoken"
OTHER = ("colleague", "staff-pass-456")


@pytest.fixture(scope="module")
def wechat_app(app: Flask) -> Flask:
    settings = app.extensions["settings"]
    app.extensions["settings"] = settings.model_copy(
        update={"wechat_token": TOKEN, "wechat_app_id": "wx0123456789abcdef"}
    )
    with app.app_context():
        users.create_user(*OTHER, role="staff", actor="test")
    return app


def _login(app: Flask, who: tuple[str, str]) -> FlaskClient:
    c = app.test_client()
    r = c.post("/api/auth/login", json={"username": who[0], "password": who[1]})
    c.environ_base["HTTP_X_CSRF_TOKEN"] = r.get_json()["csrf_token"]
    return c


@pytest.fixture()
def client(wechat_app: Flask) -> Iterator[FlaskClient]:
    with wechat_app.app_context():
        db.session.query(HandoffRequest).delete()
        db.session.commit()
    yield _login(wechat_app, STAFF)


def _deliver(app: Flask, customer: str, text: str) -> int:
    ts, nonce = str(int(time.time())), uuid.uuid4().hex[:8]
    sig = hashlib.sha1("".join(sorted([TOKEN, ts, nonce])).encode()).hexdigest()
    xml = (
        f"<xml><ToUserName>gh_test</ToUserName><FromUserName>{customer}</FromUserName>"
        f"<CreateTime>{ts}</CreateTime><MsgType>text</MsgType>"
        f"<Content><![CDATA[{text}]]></Content><MsgId>{uuid.uuid4().int % 10**18}</MsgId></xml>"
    )
    r = app.test_client().post(
        f"/wechat?signature={sig}&timestamp={ts}&nonce={nonce}",
        data=xml.encode(),
        content_type="text/xml",
    )
    return r.status_code


def test_a_customer_asking_for_a_person_is_one_request_with_their_thread(
    client: FlaskClient, wechat_app: Flask
) -> None:
    customer = f"o{uuid.uuid4().hex[:20]}"
    with wechat_app.app_context():
        db.session.add(
            InboundMessage(
                channel="wechat",
                dedup_key=uuid.uuid4().hex,
                customer=customer,
                msg_type="text",
                content="我的手机 13812345678 收不到货",
                status="answered",
                outcome="refused",
            )
        )
        db.session.commit()
    for _ in range(2):
        assert _deliver(wechat_app, customer, "人工") == 200
    body = client.get("/api/handoffs").get_json()
    (h,) = [h for h in body["handoffs"] if h["customer"] == customer]
    assert h["source"] == "wechat" and h["status"] == "open" and h["summary"] == "人工"
    assert body["counts"] == {"open": 1, "taken": 0, "closed": 0}
    assert [m["question"] for m in h["thread"]] == ["我的手机 138****5678 收不到货", "人工", "人工"]
    assert [m["outcome"] for m in h["thread"]] == ["refused", "handed_off", "handed_off"]
    assert client.get(f"/api/handoffs/{h['id']}").get_json()["handoff"]["thread"] == h["thread"]


def _request(app: Flask, **fields: str) -> int:
    with app.app_context():
        row = HandoffRequest(source="dify", customer="c1", reason="投诉", **fields)
        db.session.add(row)
        db.session.commit()
        return row.id


def test_take_and_close_with_who_and_when(client: FlaskClient, wechat_app: Flask) -> None:
    rid = _request(wechat_app)
    r = client.post(f"/api/handoffs/{rid}/take")
    assert r.status_code == 200, r.get_data(as_text=True)
    h = r.get_json()["handoff"]
    assert h["status"] == "taken" and h["taken_by"] == STAFF[0] and h["taken_at"]
    assert r.get_json()["counts"]["taken"] == 1
    other = _login(wechat_app, OTHER)
    r = other.post(f"/api/handoffs/{rid}/take")
    assert r.status_code == 409 and f"taken by {STAFF[0]}" in r.get_json()["error"]
    r = other.post(f"/api/handoffs/{rid}/close")  # a colleague may close it
    h = r.get_json()["handoff"]
    assert r.status_code == 200 and h["status"] == "closed" and h["closed_by"] == OTHER[0]
    assert h["taken_by"] == STAFF[0]
    again = client.post(f"/api/handoffs/{rid}/close")
    assert again.status_code == 409 and "closed already" in again.get_json()["error"]
    assert client.post(f"/api/handoffs/{rid}/take").status_code == 409
    with wechat_app.app_context():
        row = db.session.get(HandoffRequest, rid)
        assert row.closed_by == OTHER[0] and row.taken_by == STAFF[0]
        actions = db.session.scalars(
            db.select(AuditEntry.action).where(AuditEntry.target == f"handoff:{rid}")
        ).all()
        assert sorted(actions) == ["handoff.close", "handoff.take"]
    assert client.get("/api/handoffs").get_json()["handoffs"] == []
    assert [h["id"] for h in client.get("/api/handoffs?state=closed").get_json()["handoffs"]] == [
        rid
    ]


def test_pages_of_the_inbox(client: FlaskClient, wechat_app: Flask) -> None:
    ids = [_request(wechat_app) for _ in range(5)]
    seen, cursor = [], ""
    while True:
        body = client.get(f"/api/handoffs?limit=2&cursor={cursor}").get_json()
        seen += [h["id"] for h in body["handoffs"]]
        if body["next_cursor"] is None:
            break
        cursor = body["next_cursor"]
    assert seen == sorted(ids, reverse=True)
    assert client.get("/api/handoffs?source=wechat").get_json()["handoffs"] == []


def test_bad_input_unknown_ids_and_no_login(client: FlaskClient, wechat_app: Flask) -> None:
    assert client.post("/api/handoffs/999999/take").status_code == 404
    assert client.post("/api/handoffs/999999/close").status_code == 404
    assert client.get("/api/handoffs/999999").status_code == 404
    for query, words in [
        ("state=maybe", "state must be one of"),
        ("source=<script>", "source"),
        ("limit=0", "limit"),
        ("cursor=x", "cursor"),
    ]:
        r = client.get(f"/api/handoffs?{query}")
        assert r.status_code == 400 and words in r.get_json()["error"], query
    rid = _request(wechat_app)
    anonymous = wechat_app.test_client()
    assert anonymous.get("/api/handoffs").status_code == 401
    assert anonymous.post(f"/api/handoffs/{rid}/take").status_code in (401, 403)
    no_token = wechat_app.test_client()
    no_token.post("/api/auth/login", json={"username": STAFF[0], "password": STAFF[1]})
    assert no_token.post(f"/api/handoffs/{rid}/take").status_code == 403  # no CSRF token
    with wechat_app.app_context():
        assert db.session.get(HandoffRequest, rid).status == "open"


def test_the_page_shows_the_counts_escaped(client: FlaskClient, wechat_app: Flask) -> None:
    _request(wechat_app, summary="<script>alert(1)</script>")
    page = client.get("/admin/handoffs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="count-open">1<' in html and "<script>alert(1)" not in html
    assert wechat_app.test_client().get("/admin/handoffs").status_code == 302
