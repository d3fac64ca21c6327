"""/mcp driven by the official MCP client (``mcp``) over Streamable HTTP, as Dify's
"Tools → MCP" (and any other MCP client) calls it: initialize, list the tools, call them
with a bearer key; a missing or wrong key is refused by HTTP 401 with a JSON-RPC error.

The in-process tests serve the Flask app from a threaded WSGI server (as gunicorn's
gthread workers run it) on SQLite: the protocol, the key check, the arguments' validation
and the hand-off, which needs only the database. The slow ones call every tool of the real
service (gunicorn, Milvus, the model, OCR) through the same client.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
import requests
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from app import create_app
from app.settings import load_settings
from app.store import InboundMessage
from tests.dify.conftest import OCR_LINES, DifyService
from tests.support import wait_until

TOOLS = {
    "searchKnowledgeBase",
    "answerCustomerQuestion",
    "lookupFaq",
    "ocrImageFromUrl",
    "handOffToHuman",
}
#: The staff's: unanswered questions into FAQ entries (app/conversations/curation.py).
STAFF_TOOLS = {"listUnansweredQuestions", "addFaqEntry", "addFaqParaphrases"}


@asynccontextmanager
async def connect(url: str, key: str | None, mode: str = "legacy") -> Any:
    """An initialized MCP client session (``legacy``: the initialize handshake Dify does;
    ``auto``: the SDK's own discovery of the newest protocol)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx2.AsyncClient(headers=headers, timeout=120) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            yield client


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _call(url: str, key: str, name: str, arguments: dict[str, Any]) -> Any:
    async with connect(url, key) as client:
        return await client.call_tool(name, arguments)


def call(url: str, key: str, name: str, arguments: dict[str, Any]) -> Any:
    return run(_call(url, key, name, arguments))


def text(result: Any) -> str:
    return result.content[0].text


# --- in process --------------------------------------------------------------------------


@dataclass
class Served:
    url: str
    key: str
    key_id: int
    app: Any


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from app.accounts import apikeys
    from app.extensions import db

    data_dir: Path = tmp_path_factory.mktemp("mcp")
    app = create_app(
        load_settings(
            data_dir=data_dir,
            database_url=f"sqlite:///{data_dir}/mcp.db",
            api_key_cache_s=0,
            log_level="WARNING",
        )
    )
    with app.app_context():
        db.create_all()
        row, key = apikeys.create("mcp-tests")
        key_id = row.id
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Served(f"http://127.0.0.1:{server.port}/mcp", key, key_id, app)
    server.shutdown()


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_initialize_and_list_tools(served: Served, mode: str) -> None:
    async def go() -> tuple[Any, Any]:
        async with connect(served.url, served.key, mode) as client:
            return client.server_info, await client.list_tools()

    info, listed = run(go())
    assert info.name == "wxcs-customer-service"
    tools = {t.name: t for t in listed.tools}
    assert set(tools) == TOOLS | STAFF_TOOLS
    # The tool API's operations: the same descriptions and parameters as /openapi.json.
    with served.app.test_client() as web:
        doc = web.get("/openapi.json").get_json()
    for path in doc["paths"].values():
        op = path["post"]
        if op["operationId"] not in tools:
            assert op["operationId"] == "ocrImageUpload"  # multipart: no JSON form
            continue
        tool = tools[op["operationId"]]
        assert tool.description == op["description"] and len(tool.description) > 80
        body = op["requestBody"]["content"]["application/json"]["schema"]
        body = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
        schema = tool.input_schema
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert set(schema["properties"]) == set(body["properties"])
        assert schema.get("required") == body.get("required")
        assert all(p.get("description") for p in schema["properties"].values())
    assert tools["searchKnowledgeBase"].annotations.read_only_hint is True
    assert tools["handOffToHuman"].annotations.read_only_hint is False
    assert tools["listUnansweredQuestions"].annotations.read_only_hint is True
    assert tools["addFaqEntry"].annotations.read_only_hint is False


def test_handoff_is_recorded_under_the_key(served: Served) -> None:
    from app.extensions import db
    from app.store import HandoffRequest

    result = call(
        served.url,
        served.key,
        "handOffToHuman",
        {"reason": "顾客要求人工", "summary": "订单三天未发货", "customer": "o_mcp"},
    )
    assert result.is_error is False, text(result)
    body = result.structured_content
    assert json.loads(text(result)) == body and "人工客服" in body["message"]
    with served.app.app_context():
        row = db.session.get(HandoffRequest, body["handoff_id"])
        assert (row.reason, row.customer, row.source) == ("顾客要求人工", "o_mcp", "dify")
        assert row.api_key_id == served.key_id


@pytest.mark.parametrize(
    "name, arguments, words",
    [
        ("handOffToHuman", {}, "reason: Missing data for required field"),
        ("handOffToHuman", {"reason": ""}, "reason: Length must be between 1"),
        ("handOffToHuman", {"reason": "x", "surprise": 1}, "surprise: Unknown field"),
        ("handOffToHuman", {"reason": "a\u0000b"}, "NUL"),
        ("handOffToHuman", {"reason": ["not", "text"]}, "reason: Not a valid string"),
        ("searchKnowledgeBase", {"query": "x", "top_k": 500}, "top_k"),
        ("searchKnowledgeBase", {"query": "x", "top_k": "many"}, "top_k: Not a valid integer"),
        ("answerCustomerQuestion", {"question": "x", "max_seconds": 600}, "max_seconds"),
        ("ocrImageFromUrl", {}, "image_url: Missing data"),
        ("noSuchTool", {}, "unknown tool 'noSuchTool'"),
    ],
)
def test_bad_arguments_are_tool_errors(
    served: Served, name: str, arguments: dict[str, Any], words: str
) -> None:
    result = call(served.url, served.key, name, arguments)
    assert result.is_error is True
    assert words in text(result), text(result)
    assert "Traceback" not in text(result)


def test_an_unexpected_failure_is_a_tool_error_naming_a_request_id(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.dify import tools

    def broken(**_kw: object) -> dict:
        raise RuntimeError("SELECT secret FROM somewhere")

    monkeypatch.setattr(tools, "handoff", broken)
    result = call(served.url, served.key, "handOffToHuman", {"reason": "x"})
    assert result.is_error is True
    assert text(result).startswith("internal_error: ") and "(request " in text(result)
    assert "secret" not in text(result)


@pytest.mark.parametrize(
    "header, challenge",
    [
        (None, 'Bearer realm="wxcs"'),
        ("Bearer wxcs_not-a-key", 'Bearer realm="wxcs", error="invalid_token"'),
        ("Basic abc", 'Bearer realm="wxcs", error="invalid_token"'),
    ],
)
def test_a_missing_or_wrong_key_is_a_401(served: Served, header: str | None, challenge) -> None:
    headers = {"Authorization": header} if header else {}
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    resp = requests.post(served.url, json=listing, headers=headers, timeout=30)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == challenge
    body = resp.json()
    assert body["jsonrpc"] == "2.0" and body["error"]["code"] == -32001
    assert "key" in body["error"]["message"].lower()


@pytest.mark.parametrize("key", [None, "wxcs_not-a-key"])
def test_the_client_is_refused_without_a_valid_key(served: Served, key: str | None) -> None:
    async def go() -> None:
        async with connect(served.url, key) as client:
            await client.list_tools()

    with pytest.raises(BaseException) as caught:  # an ExceptionGroup from the client's tasks
        run(go())
    flat: list[BaseException] = []
    pending = [caught.value]
    while pending:
        error = pending.pop()
        if isinstance(error, BaseExceptionGroup):
            pending.extend(error.exceptions)
        else:
            flat.append(error)
    assert any(isinstance(e, MCPError) and e.error.code == -32001 for e in flat), flat


def test_an_oversized_body_is_a_413(served: Served) -> None:
    big = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"x": "a" * 300_000}}
    resp = requests.post(
        served.url, json=big, headers={"Authorization": f"Bearer {served.key}"}, timeout=30
    )
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == -32600


# --- the real service: gunicorn, Milvus, the model, OCR ----------------------------------


@pytest.mark.slow
def test_every_tool_over_gunicorn(dify_service: DifyService, image_server: str) -> None:
    url = dify_service.url + "/mcp"

    async def go() -> dict[str, Any]:
        async with connect(url, dify_service.key) as client:
            listed = await client.list_tools()
            assert {t.name for t in listed.tools} == TOOLS | STAFF_TOOLS
            calls = {
                "searchKnowledgeBase": {"query": "满多少包邮？", "top_k": 3},
                "lookupFaq": {"question": "满多少包邮？"},
                "answerCustomerQuestion": {"question": "满多少包邮？"},
                "ocrImageFromUrl": {"image_url": image_server + "/shot.png"},
                "handOffToHuman": {"reason": "顾客要求人工", "customer": "o_mcp_e2e"},
                "miss": {"question": "你们老板是谁"},
                "internal": {"image_url": "http://169.254.169.254/latest/meta-data/"},
            }
            out = {}
            for name, arguments in calls.items():
                tool = {"miss": "lookupFaq", "internal": "ocrImageFromUrl"}.get(name, name)
                out[name] = await client.call_tool(tool, arguments)
            return out

    results = run(go())
    for name in TOOLS:
        assert results[name].is_error is False, (name, text(results[name]))
    got = {name: results[name].structured_content for name in TOOLS}
    search = got["searchKnowledgeBase"]["results"]
    assert 1 <= len(search) <= 3 and any("99" in r["content"] for r in search)
    assert got["lookupFaq"]["found"] is True and "99" in got["lookupFaq"]["answer"]
    assert results["miss"].structured_content["found"] is False
    answer = got["answerCustomerQuestion"]
    assert answer["from_faq"] is True and "99" in answer["answer"] and answer["sources"]
    assert got["ocrImageFromUrl"]["text"].splitlines()[:2] == OCR_LINES
    handoff = got["handOffToHuman"]
    assert "人工客服" in handoff["message"]
    assert (
        dify_service.scalar(
            "SELECT customer FROM handoff_requests WHERE id=:i", i=handoff["handoff_id"]
        )
        == "o_mcp_e2e"
    )
    assert results["internal"].is_error is True
    assert text(results["internal"]).startswith("bad_image: ")


@pytest.mark.slow
def test_gunicorn_refuses_a_missing_or_wrong_key(dify_service: DifyService) -> None:
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    for headers in ({}, dify_service.headers("wxcs_not-a-key")):
        resp = requests.post(dify_service.url + "/mcp", json=listing, headers=headers, timeout=30)
        assert resp.status_code == 401, resp.text
        assert resp.json()["error"]["code"] == -32001
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.slow
def test_staff_tools_file_unanswered_questions_as_an_faq_entry(dify_service: DifyService) -> None:
    """What a Dify agent or workflow does for staff: list what the bot could not answer,
    file an approved answer with the customers' wordings, add one more wording later;
    each is answered verbatim (lookupFaq) within seconds, and audited under the key."""
    tag = uuid.uuid4().hex[:6]
    asked = [f"会员卡{tag}怎么办理", f"请问会员卡{tag}在哪里办"]
    now = datetime.now(UTC)
    with Session(dify_service.db) as session:
        for i, question in enumerate(asked):
            session.add(
                InboundMessage(
                    dedup_key=f"mcp-{uuid.uuid4().hex}",
                    customer=f"o_mcp_staff_{i}",
                    msg_type="text",
                    content=question,
                    status="answered",
                    outcome="refused",
                    created_at=now - timedelta(minutes=2 + i),
                )
            )
        session.commit()
    answer = f"会员卡{tag}请到一楼前台办理，工本费10元。"
    url = dify_service.url + "/mcp"

    async def call(name: str, arguments: dict[str, Any]) -> Any:
        async with connect(url, dify_service.key) as client:
            result = await client.call_tool(name, arguments)
        assert result.is_error is False, (name, text(result))
        return result.structured_content

    listed = run(call("listUnansweredQuestions", {"days": 1, "limit": 200}))
    shown = {q for g in listed["groups"] for q in g["questions"]}
    assert set(asked) <= shown, listed

    filed = run(
        call("addFaqEntry", {"question": asked[0], "answer": answer, "questions": asked[1]})
    )
    entry_id = filed["entry"]["id"]

    def verbatim(question: str) -> bool:
        found = run(call("lookupFaq", {"question": question}))
        return found["found"] is True and found["answer"] == answer

    wait_until(lambda: verbatim(asked[1]), 30, "the customers' wording answered verbatim")
    later = f"办会员卡{tag}需要带什么"
    run(call("addFaqParaphrases", {"entry_id": entry_id, "questions": later}))
    wait_until(lambda: verbatim(later), 30, "the added wording answered verbatim")
    after = {
        q
        for g in run(call("listUnansweredQuestions", {"days": 1, "limit": 200}))["groups"]
        for q in g["questions"]
    }
    assert not set(asked) & after  # filed: no longer unanswered
    actors = dify_service.scalar(
        "SELECT count(*) FROM audit_log WHERE actor LIKE 'apikey:%' AND detail LIKE :t",
        t=f"%{tag}%",
    )
    assert actors >= 1
