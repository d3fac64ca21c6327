"""Every error the tool API answers matches the Error schema that /openapi.json publishes
(what Dify, and anything generated from the document, expects): real requests to each
tool endpoint of the app on PostgreSQL, each body validated with openapi-schema-validator
against the response the served document declares for its status."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_schema_validator import OAS30Validator

from app import create_app
from app.accounts import apikeys
from app.extensions import db
from app.settings import load_settings
from tests.conftest import temp_pg_database
from tests.support import free_port

IMAGE_LIMIT = 128 * 1024  # two test images fit, one over it does not
BODY_LIMIT = 2048


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    with temp_pg_database() as url:
        settings = load_settings(
            data_dir=tmp_path_factory.mktemp("data"),
            database_url=url,
            milvus_uri=f"http://127.0.0.1:{free_port()}",  # nothing listens: a real 503
            llm_model_path=Path("/nonexistent/model.gguf"),
            api_max_body_bytes=BODY_LIMIT,
            tools_max_image_bytes=IMAGE_LIMIT,
            wechat_instant_faq=False,
        )
        app = create_app(settings)
        with app.app_context():
            db.create_all()
        yield app
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture(scope="module")
def key(app: Flask) -> str:
    with app.app_context():
        return apikeys.create("schema-tests")[1]


@pytest.fixture(scope="module")
def spec(app: Flask) -> dict[str, Any]:
    resp = app.test_client().get("/openapi.json")
    assert resp.status_code == 200
    return resp.get_json()


def check_against_spec(spec: dict[str, Any], path: str, resp: Any) -> None:
    """The response is one the document declares for ``path``, and its body matches the
    declared schema (the status's own response, else ``default``)."""
    responses = spec["paths"][path]["post"]["responses"]
    declared = responses.get(str(resp.status_code)) or responses.get("default")
    assert declared is not None, f"{path}: {resp.status_code} is not declared"
    assert resp.mimetype == "application/json", (path, resp.status_code, resp.mimetype)
    schema = dict(declared["content"]["application/json"]["schema"])
    schema["components"] = spec["components"]  # what its $ref points into
    errors = [e.message for e in OAS30Validator(schema).iter_errors(resp.get_json())]
    assert not errors, f"{path} {resp.status_code} {resp.get_json()}: {errors}"


JSON_TOOLS = {
    "/tools/search": {"query": "运费"},
    "/tools/answer": {"question": "运费多少"},
    "/tools/faq": {"question": "运费多少"},
    "/tools/ocr/url": {"image_url": "http://10.0.0.1/shot.png"},
    "/tools/handoff": {"reason": "顾客要求人工"},
}


def _bad_json_bodies(path: str, valid: dict[str, Any]) -> list[tuple[object, str]]:
    name = next(iter(valid))
    return [
        ({}, name),  # a required parameter missing
        ({**valid, name: ""}, name),
        ({**valid, name: 12}, name),  # wrong type
        ({**valid, "surprise": 1}, "surprise"),  # unknown parameter
        (["not", "an", "object"], "_body"),
        (None, "_body"),  # no body at all
    ]


@pytest.mark.parametrize("path", sorted(JSON_TOOLS))
def test_invalid_requests_answer_the_declared_400(
    app: Flask, key: str, spec: dict[str, Any], path: str
) -> None:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    for body, field in _bad_json_bodies(path, JSON_TOOLS[path]):
        resp = client.post(path, json=body, headers=headers)
        assert resp.status_code == 400, (body, resp.get_data(as_text=True))
        check_against_spec(spec, path, resp)
        assert resp.get_json()["error"] == "invalid_request"
        # Dify editors are told which parameter was wrong, as the schema says.
        assert field in resp.get_json()["fields"], (body, resp.get_json())
    # Form-encoded, as a Dify http-request node sends it, and text the database refuses.
    resp = client.post(path, data={"surprise": "1"}, headers=headers)
    assert resp.status_code == 400
    check_against_spec(spec, path, resp)
    name = next(iter(JSON_TOOLS[path]))
    resp = client.post(path, json={**JSON_TOOLS[path], name: "x\u0000y"}, headers=headers)
    assert resp.status_code == 400
    check_against_spec(spec, path, resp)


@pytest.mark.parametrize("path", sorted([*JSON_TOOLS, "/tools/ocr/upload"]))
def test_auth_and_size_failures_answer_the_declared_schema(
    app: Flask, key: str, spec: dict[str, Any], path: str
) -> None:
    client: FlaskClient = app.test_client()
    for headers in ({}, {"Authorization": "Basic eDp5"}, {"Authorization": "Bearer nope"}):
        resp = client.post(path, json=JSON_TOOLS.get(path, {}), headers=headers)
        assert resp.status_code == 401
        check_against_spec(spec, path, resp)
    auth = {"Authorization": f"Bearer {key}"}
    if path == "/tools/ocr/upload":
        big = {"image": (io.BytesIO(b"\x89PNG" + b"\0" * (IMAGE_LIMIT + 70 * 1024)), "big.png")}
        resp = client.post(path, data=big, headers=auth, content_type="multipart/form-data")
    else:
        resp = client.post(path, json={"question": "x" * (BODY_LIMIT * 2)}, headers=auth)
    assert resp.status_code == 413
    check_against_spec(spec, path, resp)


def test_upload_failures_answer_the_declared_schema(
    app: Flask, key: str, spec: dict[str, Any]
) -> None:
    client = app.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    path = "/tools/ocr/upload"
    for data in (
        {},  # no file
        {"image": "a text field, not a file"},
        {"image": (io.BytesIO(b"MZ\x90\x00" + b"\0" * 100), "x.png")},  # not an image
    ):
        resp = client.post(path, data=data, headers=auth, content_type="multipart/form-data")
        assert resp.status_code == 400, resp.get_data(as_text=True)
        check_against_spec(spec, path, resp)


def test_outages_answer_the_declared_schema(app: Flask, key: str, spec: dict[str, Any]) -> None:
    """Milvus is down (nothing listens at MILVUS_URI): a 503 in the Error format."""
    resp = app.test_client().post(
        "/tools/search", json={"query": "运费"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert resp.status_code == 503, resp.get_data(as_text=True)
    check_against_spec(spec, "/tools/search", resp)
    assert resp.get_json()["error"] == "knowledge_unavailable"


def test_a_database_outage_answers_the_declared_schema(
    tmp_path: Path, spec: dict[str, Any]
) -> None:
    """PostgreSQL unreachable (nothing listens at DATABASE_URL): 503 in the Error format,
    not the app-wide body without a message, and nothing of the driver's words."""
    down = create_app(
        load_settings(
            data_dir=tmp_path,
            database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none",
            milvus_uri=f"http://127.0.0.1:{free_port()}",
            wechat_instant_faq=False,
        )
    )
    for path, body in JSON_TOOLS.items():
        resp = down.test_client().post(path, json=body, headers={"Authorization": "Bearer k"})
        assert resp.status_code == 503, resp.get_data(as_text=True)
        check_against_spec(spec, path, resp)
        assert "psycopg" not in resp.get_data(as_text=True)
    with down.app_context():
        db.engine.dispose()
