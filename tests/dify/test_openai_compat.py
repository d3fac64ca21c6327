"""/v1 as Dify's "OpenAI-API-compatible" model provider uses it, on the real 0.5B model."""

from __future__ import annotations

import json

import pytest
import requests

from tests.dify.conftest import DifyService

pytestmark = pytest.mark.slow


def _sse(resp: requests.Response) -> list[str]:
    """The `data:` payloads of an SSE response, in order."""
    events, buf = [], ""
    for chunk in resp.iter_content(chunk_size=None, decode_unicode=True):
        buf += chunk
        while "\n\n" in buf:
            block, buf = buf.split("\n\n", 1)
            for line in block.splitlines():
                if line.startswith("data:"):
                    events.append(line[5:].strip())
    return events


def test_credential_check_ping(dify_service: DifyService) -> None:
    resp = dify_service.post(
        "/v1/chat/completions",
        json={
            "model": "local-llm",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "ping"}],
        },
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert 0 < body["usage"]["completion_tokens"] <= 5
    assert body["usage"]["prompt_tokens"] > 0


def test_models_lists_plain_and_rag(dify_service: DifyService) -> None:
    resp = requests.get(dify_service.url + "/v1/models", headers=dify_service.headers(), timeout=30)
    assert [m["id"] for m in resp.json()["data"]] == ["local-llm", "local-llm-rag"]


def test_streaming_with_usage_last(dify_service: DifyService) -> None:
    resp = dify_service.post(
        "/v1/chat/completions",
        json={
            "model": "local-llm",
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": 40,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": "你是客服助手。"},
                {"role": "user", "content": "用一句话介绍你自己"},
            ],
        },
        stream=True,
    )
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    events = _sse(resp)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text.strip() and "<think>" not in text and "</think>" not in text
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] in ("stop", "length")
    last = chunks[-1]
    assert last["choices"] == [] and last["usage"]["completion_tokens"] > 0
    assert last["usage"]["total_tokens"] == (
        last["usage"]["prompt_tokens"] + last["usage"]["completion_tokens"]
    )
    assert all("usage" not in c for c in chunks[:-1])


def test_streaming_without_usage(dify_service: DifyService) -> None:
    resp = dify_service.post(
        "/v1/chat/completions",
        json={
            "model": "local-llm",
            "stream": True,
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "你好"}],
        },
        stream=True,
    )
    chunks = [json.loads(e) for e in _sse(resp)[:-1]]
    assert all("usage" not in c for c in chunks)


def test_rag_model_answers_from_the_knowledge(dify_service: DifyService) -> None:
    resp = dify_service.post(
        "/v1/chat/completions",
        json={"model": "local-llm-rag", "messages": [{"role": "user", "content": "满多少包邮？"}]},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert "99" in body["choices"][0]["message"]["content"]  # the FAQ's stored answer
    assert body["sources"][0]["source"].endswith("faq.csv")


def test_rag_model_streams_grounded_answer(dify_service: DifyService) -> None:
    resp = dify_service.post(
        "/v1/chat/completions",
        json={
            "model": "local-llm-rag",
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": 0,
            "max_tokens": 120,
            "messages": [{"role": "user", "content": "七天无理由退货的运费谁出？"}],
        },
        stream=True,
    )
    chunks = [json.loads(e) for e in _sse(resp)[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text.strip() and "<think>" not in text
    assert chunks[-1]["usage"]["prompt_tokens"] > 100  # the passages went into the prompt


@pytest.mark.parametrize(
    "body, status, code",
    [
        (
            {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]},
            404,
            "model_not_found",
        ),
        ({"model": "local-llm", "messages": []}, 400, None),
        ({"model": "local-llm", "messages": [{"role": "wizard", "content": "hi"}]}, 400, None),
        (
            {
                "model": "local-llm",
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}],
                    }
                ],
            },
            400,
            None,
        ),
        (
            {"model": "local-llm", "n": 3, "messages": [{"role": "user", "content": "hi"}]},
            400,
            None,
        ),
        (
            {
                "model": "local-llm",
                "temperature": 9,
                "messages": [{"role": "user", "content": "x"}],
            },
            400,
            None,
        ),
    ],
)
def test_bad_requests_get_openai_errors(dify_service, body, status, code) -> None:
    resp = dify_service.post("/v1/chat/completions", json=body)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["message"] and error["type"] == "invalid_request_error"
    if code:
        assert error["code"] == code


def test_missing_key_is_openai_401(dify_service: DifyService) -> None:
    resp = requests.post(
        dify_service.url + "/v1/chat/completions",
        json={"model": "local-llm", "messages": [{"role": "user", "content": "ping"}]},
        timeout=30,
    )
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_api_key"


def test_client_that_leaves_mid_stream_frees_the_model(dify_service: DifyService) -> None:
    body = {
        "model": "local-llm",
        "stream": True,
        "max_tokens": 300,
        "messages": [{"role": "user", "content": "写一篇很长的关于快递的文章"}],
    }
    with dify_service.post("/v1/chat/completions", json=body, stream=True) as resp:
        next(resp.iter_content(chunk_size=None))  # read a little, then hang up
    # The cancelled job stops and the single model worker answers the next request.
    ping = dify_service.post(
        "/v1/chat/completions",
        json={
            "model": "local-llm",
            "max_tokens": 3,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert ping.status_code == 200
