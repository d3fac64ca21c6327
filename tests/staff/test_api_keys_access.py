"""API keys (Bearer) on the staff's JSON APIs, on the real app and a real PostgreSQL
database: a key reads the log, writes FAQ entries, deals with unanswered questions and
works the hand-off inbox as staff, named by the key in the records and the audit log, with
no CSRF token (no cookie); an unknown, revoked or malformed key is a 401; a key never
manages keys or users, nor reaches the APIs that take staff sign-in only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.accounts import apikeys
from app.extensions import db
from app.faq import publishing
from app.store import AuditEntry, HandoffRequest

ENTRY = {"question": "支持开专票吗", "answer": "支持，请提供税号。", "category": "发票"}


@pytest.fixture(scope="module")
def key(app: Flask) -> str:
    with app.app_context():
        _row, plaintext = apikeys.create("script")
        db.session.commit()
    return plaintext


@pytest.fixture()
def client(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlaskClient]:
    monkeypatch.setattr(publishing, "publish", lambda ids, who: {d: "indexed" for d in ids})
    yield app.test_client()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_key_works_as_staff_named_in_the_records(
    client: FlaskClient, app: Flask, key: str
) -> None:
    assert client.get("/api/conversations", headers=_bearer(key)).status_code == 200
    assert client.get("/api/handoffs", headers=_bearer(key)).status_code == 200
    made = client.post("/api/faq", json=ENTRY, headers=_bearer(key))
    assert made.status_code == 201, made.get_data(as_text=True)
    assert made.get_json()["entry"]["created_by"] == "apikey:script"
    found = client.get("/api/faq?q=税号", headers=_bearer(key)).get_json()
    assert found["total"] == 1
    r = client.post(
        "/api/unanswered/dismiss", json={"questions": ["火星有分店吗"]}, headers=_bearer(key)
    )
    assert r.status_code == 200 and r.get_json()["dismissed"] == 1
    with app.app_context():
        row = HandoffRequest(source="dify", customer="c9", reason="投诉")
        db.session.add(row)
        db.session.commit()
        rid = row.id
    r = client.post(f"/api/handoffs/{rid}/take", headers=_bearer(key))
    assert r.status_code == 200 and r.get_json()["handoff"]["taken_by"] == "apikey:script"
    with app.app_context():
        actors = set(db.session.scalars(db.select(AuditEntry.actor)).all())
    assert "apikey:script" in actors


@pytest.mark.parametrize(
    "header",
    ["Bearer wrong-key", "Bearer ", "Bearer " + "x" * 300],
)
def test_unknown_or_malformed_keys_are_a_401(client: FlaskClient, header: str) -> None:
    for path in ("/api/conversations", "/api/faq", "/api/handoffs", "/api/unanswered"):
        r = client.get(path, headers={"Authorization": header})
        assert r.status_code == 401, (path, r.get_data(as_text=True))
    r = client.post("/api/faq", json=ENTRY, headers={"Authorization": header})
    assert r.status_code == 401


def test_a_revoked_key_is_a_401(client: FlaskClient, app: Flask) -> None:
    with app.app_context():
        row, plaintext = apikeys.create("gone")
        db.session.commit()
        apikeys.revoke(str(row.id))
        db.session.commit()
    assert client.get("/api/conversations", headers=_bearer(plaintext)).status_code == 401


def test_keys_never_manage_keys_or_users(client: FlaskClient, key: str) -> None:
    for method, path in [
        ("GET", "/api/apikeys"),
        ("POST", "/api/apikeys"),
        ("GET", "/api/auth/me"),
        ("GET", "/api/knowledge/documents"),
    ]:
        r = client.open(path, method=method, json={"name": "x"}, headers=_bearer(key))
        assert r.status_code == 403, (path, r.get_data(as_text=True))
        assert "sign in" in r.get_json()["error"]
