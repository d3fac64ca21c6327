"""Text PostgreSQL refuses (NUL, unpaired surrogates) at every API of the real app on a
real PostgreSQL database: a clear 400 naming the field, nothing stored, and no error body
that quotes SQL, a stack trace or an exception's text."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.accounts import apikeys, users
from app.extensions import db
from app.settings import load_settings
from app.store import AuditEntry, Document, HandoffRequest
from tests.conftest import temp_pg_database
from tests.knowledge.conftest import faq_csv
from tests.support import free_port

ADMIN = ("nuladmin", "admin-pass-123")
#: What no error body may contain: SQL, driver and stack-trace text.
RETRIEVAL = {
    "knowledge_id": "kb",
    "query": "退款多久到账",
    "retrieval_setting": {"top_k": 3, "score_threshold": 0.1},
}
LEAKS = ("SELECT", "INSERT", "UPDATE ", "[SQL", "psycopg", "sqlalche", "Traceback", "Error:")


def _build(tmp_path: Path, url: str) -> Flask:
    settings = load_settings(
        data_dir=tmp_path, database_url=url, milvus_uri=f"http://127.0.0.1:{free_port()}"
    )
    app = create_app(settings)
    with app.app_context():
        db.create_all()
    return app


@pytest.fixture(scope="module")
def pg_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, str]]:
    with temp_pg_database() as url:
        app = _build(tmp_path_factory.mktemp("data"), url)
        with app.app_context():
            users.create_user(*ADMIN, role="admin", actor="test")
            _row, key = apikeys.create("dify")
        yield app, key
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture()
def client(pg_app: tuple[Flask, str]) -> FlaskClient:
    return pg_app[0].test_client()


def _basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _bearer(pg_app: tuple[Flask, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pg_app[1]}"}


def _refused(resp, *named: str) -> str:  # noqa: ANN001
    """The 400's text, checked to name the problem and to leak nothing."""
    text = resp.get_data(as_text=True)
    assert resp.status_code == 400, text
    assert "cannot be stored" in text and all(n in text for n in named), text
    assert not any(leak in text for leak in LEAKS), text
    return text


def _count(app: Flask, model: type) -> int:
    with app.app_context():
        return db.session.query(model).count()


def test_a_nul_in_a_tool_body_is_a_400_in_the_tool_error_format(
    pg_app: tuple[Flask, str], client: FlaskClient
) -> None:
    before = _count(pg_app[0], HandoffRequest)
    for reason in ("x\u0000y", "x\ud800y"):
        resp = client.post("/tools/handoff", json={"reason": reason}, headers=_bearer(pg_app))
        _refused(resp, "'reason'")
        assert resp.get_json()["error"] == "bad_request"
    # The same field form-encoded, as a Dify http-request node sends it.
    form = client.post("/tools/handoff", data={"reason": "x\x00y"}, headers=_bearer(pg_app))
    _refused(form, "'reason'")
    assert _count(pg_app[0], HandoffRequest) == before
    ok = client.post("/tools/handoff", json={"reason": "投诉"}, headers=_bearer(pg_app))
    assert ok.status_code == 200, ok.get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    [
        "/api/knowledge/documents?q=%00",
        "/api/knowledge/documents?category=a%00",
        "/api/knowledge/documents/%00",
        "/api/knowledge/documents/faq%00.csv",
        "/api/knowledge/audit?target=%00",
    ],
)
def test_a_nul_in_a_knowledge_api_url_is_a_400(client: FlaskClient, path: str) -> None:
    resp = client.get(path, headers=_basic(*ADMIN))
    _refused(resp)
    assert set(resp.get_json()) == {"error"}


def test_an_upload_with_a_nul_in_its_category_or_file_name_stores_nothing(
    pg_app: tuple[Flask, str], client: FlaskClient
) -> None:
    data = faq_csv().encode()
    for form, named in (
        ({"category": "售后\x00"}, "'category'"),
        ({}, "file name"),
    ):
        name = "faq.csv" if form else "faq\x00.csv"
        body = {"file": (io.BytesIO(data), name), **form}
        resp = client.post("/api/knowledge/documents", data=body, headers=_basic(*ADMIN))
        _refused(resp, named)
    assert _count(pg_app[0], Document) == 0


def test_sign_in_and_admin_apis_refuse_a_nul(
    pg_app: tuple[Flask, str], client: FlaskClient
) -> None:
    audit_rows = _count(pg_app[0], AuditEntry)
    _refused(client.post("/api/auth/login", json={"username": "a\x00", "password": "x"}))
    _refused(client.post("/api/auth/login", data={"username": "a\x00", "password": "x"}))
    _refused(client.get("/api/knowledge/documents", headers=_basic("a\x00b", "x")), "username")
    _refused(client.post("/api/apikeys", json={"name": "k\x00"}, headers=_basic(*ADMIN)))
    assert _count(pg_app[0], AuditEntry) == audit_rows
    login = client.post("/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
    assert login.status_code == 200
    _refused(client.get("/admin/audit?target=%00"))


def test_dify_and_openai_endpoints_refuse_a_nul_in_their_formats(
    pg_app: tuple[Flask, str], client: FlaskClient
) -> None:
    retrieval = dict(RETRIEVAL, query="退款\x00")
    resp = client.post("/dify/retrieval", json=retrieval, headers=_bearer(pg_app))
    _refused(resp, "'query'")
    assert resp.get_json()["error_code"] == 400
    chat = {"model": "x", "messages": [{"role": "user", "content": "hi\x00"}]}
    resp = client.post("/v1/chat/completions", json=chat, headers=_bearer(pg_app))
    _refused(resp, "'messages[0].content'")


def test_no_error_body_quotes_sql_when_the_database_fails(tmp_path: Path) -> None:
    with temp_pg_database() as url:
        app = _build(tmp_path, url)
        with app.app_context():
            users.create_user(*ADMIN, role="admin", actor="test")
            db.session.execute(db.text("DROP TABLE audit_log"))
            db.session.execute(db.text("DROP TABLE documents CASCADE"))
            db.session.execute(db.text("DROP TABLE handoff_requests, api_keys"))
            db.session.commit()
        client = app.test_client()
        for path in ("/api/knowledge/audit", "/api/knowledge/documents", "/api/apikeys"):
            resp = client.get(path, headers=_basic(*ADMIN))
            text = resp.get_data(as_text=True)
            assert resp.status_code == 503, (path, text)
            assert not any(leak in text for leak in LEAKS), (path, text)
            assert json.loads(text)["error"]
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.mark.slow  # waits out MILVUS_TIMEOUT_S against a stopped server
def test_milvus_down_is_a_503_without_the_drivers_exception(
    pg_app: tuple[Flask, str], client: FlaskClient
) -> None:
    calls = (
        client.post("/dify/retrieval", json=RETRIEVAL, headers=_bearer(pg_app)),
        client.post("/tools/search", json={"query": "退款"}, headers=_bearer(pg_app)),
        client.post("/api/knowledge/search", json={"query": "退款"}, headers=_basic(*ADMIN)),
    )
    for resp in calls:
        text = resp.get_data(as_text=True)
        assert resp.status_code == 503, text
        assert "Milvus cannot be reached" in text, text
        assert "MilvusException" not in text and "code=" not in text, text
