"""Chunked request bodies (no Content-Length) against the real app over real HTTP (a
server that de-chunks, as gunicorn does): over the size limit is a 413, as it is with a
Content-Length, never a body cut short and refused as malformed; up to the limit, read
whole."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
from flask import Flask
from urllib3 import encode_multipart_formdata

from app.accounts import apikeys, users
from app.extensions import db
from app.simulator.callback_client import CallbackClient
from app.simulator.server import serve_in_thread
from app.simulator.wecom_callback import WeComCallbackClient
from app.store import Document, InboundMessage
from tests.integration.test_wechat_callback import _app
from tests.integration.test_wecom_callback import AES, AGENT, CORP, TOKEN, WECOM
from tests.support import WECHAT

LIMIT = 4096
ADMIN = ("chunkadmin", "admin-pass-123")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, str, str]]:
    app = _app(
        tmp_path_factory.mktemp("data"),
        wechat_max_body_bytes=LIMIT,
        api_max_body_bytes=LIMIT,
        kb_max_upload_bytes=LIMIT,
        **WECOM,
    )
    with app.app_context():
        users.create_user(*ADMIN, role="admin", actor="test")
        _row, key = apikeys.create("dify")
    with serve_in_thread(app) as handle:
        yield app, handle.url, key


def _chunked(data: bytes, size: int = 1000) -> Iterator[bytes]:
    """A generator body: requests sends it with Transfer-Encoding: chunked."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _rows(app: Flask, model: type) -> int:
    with app.app_context():
        return db.session.query(model).count()


def _text_of_size(signer: CallbackClient, size: int, msg_id: str) -> tuple[dict, bytes]:
    """A signed text message whose body has exactly ``size`` bytes."""
    prepared = signer.prepare(signer.text("o_chunk", "", msg_id=msg_id))
    pad = size - len(prepared.body.encode())
    prepared = signer.prepare(signer.text("o_chunk", "问" * (pad // 3) + "x" * (pad % 3), msg_id))
    body = prepared.body.encode()
    assert len(body) == size
    return prepared.params, body


@pytest.mark.parametrize(("size", "status"), [(LIMIT - 100, 200), (LIMIT, 200), (LIMIT + 1, 413)])
def test_wechat_chunked_bodies_up_to_the_limit_are_read_whole_and_over_it_are_413(
    service: tuple[Flask, str, str], size: int, status: int
) -> None:
    app, url, _key = service
    signer = CallbackClient(f"{url}/wechat", WECHAT["token"], WECHAT["app_id"])
    before = _rows(app, InboundMessage)
    params, body = _text_of_size(signer, size, msg_id=str(size))
    resp = requests.post(f"{url}/wechat", params=params, data=_chunked(body), timeout=10)
    assert resp.status_code == status, resp.text
    assert _rows(app, InboundMessage) == before + (status == 200)
    if status == 413:
        assert resp.json() == {"error": "body too large"}


def test_wecom_chunked_body_over_the_limit_is_413(service: tuple[Flask, str, str]) -> None:
    app, url, _key = service
    signer = WeComCallbackClient(f"{url}/wecom", TOKEN, CORP, AES, AGENT)
    prepared = signer.prepare(signer.text("zhangsan", "问" * LIMIT))
    body = prepared.body.encode()
    resp = requests.post(f"{url}/wecom", params=prepared.params, data=_chunked(body), timeout=10)
    assert resp.status_code == 413, resp.text


def test_tool_api_chunked_json_over_the_limit_is_413(service: tuple[Flask, str, str]) -> None:
    _app_, url, key = service
    body = json.dumps({"reason": "投诉" * LIMIT}).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    resp = requests.post(f"{url}/tools/handoff", data=_chunked(body), headers=headers, timeout=10)
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"] == "too_large"


def test_knowledge_upload_chunked_over_the_limit_is_413(service: tuple[Flask, str, str]) -> None:
    app, url, _key = service
    # Over the upload limit plus the room allowed for multipart framing (64 KiB).
    data = ("question,answer\n" + "包邮吗,满99元包邮\n" * 8000).encode()
    body, content_type = encode_multipart_formdata({"file": ("faq.csv", data)})
    resp = requests.post(
        f"{url}/api/knowledge/documents",
        data=_chunked(body, 64 * 1024),
        headers={"Content-Type": content_type},
        auth=ADMIN,
        timeout=30,
    )
    assert resp.status_code == 413, resp.text
    assert _rows(app, Document) == 0
