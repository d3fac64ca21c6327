"""Each audience's error format, rendered in one place (app/controllers/errors.py): the
staff console's {"error": message}, the tool API's {"error": code, "message"}, Dify's
{"error_code", "error_msg"}, OpenAI's {"error": {...}}. A status comes from the exception
that carries it, never from searching its message; an unexpected failure is logged with a
request id and its body names the id, not the exception."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from unittest import mock

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.accounts import apikeys, users
from app.dify import retrieval as dify_retrieval
from app.dify import tools
from app.extensions import db
from app.knowledge import documents
from app.pipeline import jobs as llm_jobs
from app.settings import load_settings
from tests.support import free_port

ADMIN = ("admin", "a-long-password-1")
SECRET = "s3cret at /etc/wxcs/key.pem"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    data = tmp_path_factory.mktemp("data")
    app = create_app(
        load_settings(
            data_dir=data,
            database_url=f"sqlite:///{data}/app.db",
            milvus_uri=f"http://127.0.0.1:{free_port()}",
            kb_max_upload_bytes=1024,
            wechat_instant_faq=False,
        )
    )
    with app.app_context():
        db.create_all()
        users.create_user(*ADMIN, role="admin", actor="test")
        app.config["test_key"] = apikeys.create("errors")[1]
    yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _basic() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(":".join(ADMIN).encode()).decode()}


def _bearer(app: Flask) -> dict[str, str]:
    return {"Authorization": f"Bearer {app.config['test_key']}"}


def _upload(client: FlaskClient, data: bytes, name: str) -> tuple[int, dict]:
    body = {"file": (io.BytesIO(data), name)}
    resp = client.post("/api/knowledge/documents", data=body, headers=_basic())
    return resp.status_code, resp.get_json()


def test_staff_errors_are_an_error_message(client: FlaskClient) -> None:
    resp = client.get("/api/knowledge/documents")
    assert resp.status_code == 401 and resp.get_json() == {"error": "login required"}
    resp = client.get("/api/knowledge/documents/nothing-here", headers=_basic())
    assert resp.status_code == 404 and set(resp.get_json()) == {"error"}
    resp = client.post("/api/apikeys", json={"name": " "}, headers=_basic())
    assert resp.status_code == 400 and "name" in resp.get_json()["error"]
    assert client.delete("/api/apikeys/999999", headers=_basic()).status_code == 404


def test_an_uploads_status_comes_from_its_exception_not_its_message(
    client: FlaskClient,
) -> None:
    status, body = _upload(client, b"x" * 2048, "big.txt")
    assert status == 413 and "KB_MAX_UPLOAD_BYTES" in body["error"]
    status, body = _upload(client, b"x", "tool.exe")
    assert status == 415
    # A file name that mentions the setting is not a 413 (it was, by message search).
    status, body = _upload(client, b"\x00\x01 not a pdf", "KB_MAX_UPLOAD_BYTES.pdf")
    assert status == 422 and "not a real .pdf" in body["error"]


def test_a_conflict_names_the_document(client: FlaskClient) -> None:
    csv = "question,answer\n能开发票吗,可以\n".encode()
    with mock.patch("app.controllers.staff.knowledge._enqueue"):
        first, _ = _upload(client, csv, "dup.csv")
        second, body = _upload(client, csv, "dup.csv")
    assert first == 202
    assert second == 409 and body["document_id"] == "dup.csv"


def test_a_broker_outage_does_not_put_its_words_on_the_document(client: FlaskClient) -> None:
    csv = "question,answer\n几点发货,下午五点前\n".encode()
    with mock.patch("app.controllers.staff.knowledge._enqueue", side_effect=OSError(SECRET)):
        status, body = _upload(client, csv, "queue-down.csv")
    assert status == 503 and SECRET not in str(body)
    doc = client.get("/api/knowledge/documents/queue-down.csv", headers=_basic()).get_json()
    assert doc["document"]["status"] == "failed"
    assert SECRET not in doc["document"]["error"]


def _unexpected_bodies(app: Flask, client: FlaskClient) -> list[tuple[int, dict, str]]:
    failing = mock.Mock(side_effect=RuntimeError(SECRET))
    calls = []
    with mock.patch.object(documents, "categories", failing):
        calls.append(client.get("/api/knowledge/categories", headers=_basic()))
    with mock.patch.object(tools, "search", failing):
        calls.append(client.post("/tools/search", json={"query": "x"}, headers=_bearer(app)))
    with mock.patch.object(dify_retrieval, "retrieve", failing):
        retrieval = {"knowledge_id": "kb", "query": "q", "retrieval_setting": {"top_k": 2}}
        calls.append(client.post("/dify/retrieval", json=retrieval, headers=_bearer(app)))
    with mock.patch.object(llm_jobs, "collect", failing):
        chat = {"model": app.extensions["settings"].openai_model_name, "messages": []}
        chat["messages"] = [{"role": "user", "content": "hi"}]
        calls.append(client.post("/v1/chat/completions", json=chat, headers=_bearer(app)))
    return [(r.status_code, r.get_json(), r.headers.get("X-Request-Id", "")) for r in calls]


def test_an_unexpected_failure_is_logged_with_an_id_and_never_shown(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    staff, tool, dify, openai = _unexpected_bodies(app, client)
    for _status, body, rid in (staff, tool, dify, openai):
        assert rid and rid in str(body), body
        assert SECRET not in str(body) and "RuntimeError" not in str(body), body
        assert rid in caplog.text and SECRET in caplog.text  # the log has it all
    assert staff[0] == 503 and set(staff[1]) == {"error"}  # staff pages say "retry later"
    assert tool[0] == 500 and tool[1]["error"] == "internal_error" and tool[1]["message"]
    assert dify[0] == 500 and set(dify[1]) == {"error_code", "error_msg"}
    assert dify[1]["error_code"] == 500
    assert openai[0] == 500 and openai[1]["error"]["type"] == "server_error"


def test_external_contracts_keep_their_shapes(app: Flask, client: FlaskClient) -> None:
    no_key = client.post("/dify/retrieval", json={})
    assert no_key.status_code == 403 and no_key.get_json()["error_code"] == 1001
    wrong = client.post("/dify/retrieval", json={}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and set(wrong.get_json()) == {"error_code", "error_msg"}
    assert wrong.get_json()["error_code"] == 1002
    empty = client.post("/dify/retrieval", headers=_bearer(app))
    assert empty.status_code == 400 and empty.get_json()["error_code"] == 400
    tool = client.post("/tools/search", json={"query": "x"})
    assert tool.status_code == 401 and tool.get_json()["error"] == "missing_api_key"
    assert tool.headers["WWW-Authenticate"].startswith("Bearer")
    model = client.post(
        "/v1/chat/completions",
        json={"model": "nope", "messages": [{"role": "user", "content": "hi"}]},
        headers=_bearer(app),
    )
    error = model.get_json()["error"]
    assert model.status_code == 404 and error["code"] == "model_not_found"
    assert set(error) == {"message", "type", "param", "code"}


def test_a_failed_model_job_names_the_job_not_the_exception() -> None:
    event = llm_jobs._failed("job-1")
    assert event["status"] == 502 and "job-1" in event["v"]


def test_the_wire_formats() -> None:
    from app.controllers import errors as http_errors
    from app.errors import Conflict

    exc = Conflict("exists", document_id="a.csv")
    assert http_errors.staff(exc) == {"error": "exists", "document_id": "a.csv"}
    assert http_errors.tool(exc) == {
        "error": "conflict",
        "message": "exists",
        "document_id": "a.csv",
    }
    assert http_errors.dify(exc) == {"error_code": 409, "error_msg": "exists"}
    assert http_errors.openai(exc)["error"] == {
        "message": "exists",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def test_stored_errors_keep_only_what_may_be_shown() -> None:
    from app.errors import shown_text
    from app.knowledge.store import KnowledgeStoreError, StoreUnavailable
    from app.knowledge.validation import BadFile

    fallback = "an internal error"
    assert shown_text(BadFile("a.pdf is damaged"), fallback) == "a.pdf is damaged"
    assert shown_text(KnowledgeStoreError("3 chunks are still in Milvus"), fallback) == (
        "3 chunks are still in Milvus"
    )
    down = StoreUnavailable(f"cannot open Milvus at http://10.0.0.5:19530: {SECRET}")
    assert shown_text(down, fallback) == "Milvus cannot be reached; retry later"
    assert shown_text(RuntimeError(SECRET), fallback) == fallback
