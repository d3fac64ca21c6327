"""An OpenAI-compatible API for the local model: GET /v1/models, POST /v1/chat/completions.

What Dify's "OpenAI-API-compatible" provider needs: the non-streaming credential check,
SSE streaming ending in `data: [DONE]`, usage in the last chunk when
`stream_options.include_usage`, and DeepSeek-R1 reasoning in `reasoning_content` (never as
`<think>` text in `content`). Model `<name>` is the plain model; `<name>-rag` answers from
the knowledge base (retrieval, FAQ answers, grounded prompt).
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from app.controllers import errors as http_errors
from app.controllers.api.auth import check_bearer
from app.errors import BadRequest, NotFound, Unauthorized
from app.pipeline import jobs as llm_jobs
from app.settings import Settings

bp = Blueprint("openai", __name__, url_prefix="/v1")
# OpenAI's error object, {"error": {"message", "type", "param", "code"}}: a model that
# failed or is busy (JobError) is a server_error with its status (502, 503).
http_errors.install_openai(bp)
RAG_SUFFIX = "-rag"
MAX_COMPLETION_TOKENS = 4096


def _settings() -> Settings:
    return current_app.extensions["settings"]


class _Message(Schema):
    class Meta:
        unknown = EXCLUDE

    role = fields.String(
        required=True, validate=validate.OneOf(["system", "developer", "user", "assistant", "tool"])
    )
    content = fields.Raw(load_default="")


class _StreamOptions(Schema):
    class Meta:
        unknown = EXCLUDE

    include_usage = fields.Boolean(load_default=False)


class ChatRequest(Schema):
    class Meta:
        unknown = EXCLUDE  # OpenAI clients send many optional fields we do not use

    model = fields.String(required=True, validate=validate.Length(min=1, max=128))
    messages = fields.List(
        fields.Nested(_Message), required=True, validate=validate.Length(min=1, max=200)
    )
    stream = fields.Boolean(load_default=False)
    stream_options = fields.Nested(_StreamOptions, load_default=None, allow_none=True)
    max_tokens = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1))
    max_completion_tokens = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=1)
    )
    temperature = fields.Float(
        load_default=None, allow_none=True, validate=validate.Range(min=0, max=2)
    )
    top_p = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0, max=1))
    seed = fields.Integer(load_default=None, allow_none=True)
    stop = fields.Raw(load_default=None, allow_none=True)
    n = fields.Integer(load_default=1, validate=validate.Equal(1, error="only n=1 is supported"))

    @validates_schema
    def _stop_shape(self, data: dict[str, Any], **_kw: Any) -> None:
        stop = data.get("stop")
        if stop is None or isinstance(stop, str):
            return
        if not (
            isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop)
        ):
            raise ValidationError("stop must be a string or a list of up to 4 strings", "stop")


def _text_content(content: Any) -> str:
    """Message content as text: a string, or the text parts of a content-part list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict):
                raise ValidationError("content parts must be objects", "messages")
            if part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            else:
                raise ValidationError(
                    f"content part type {part.get('type')!r} is not supported (text only)",
                    "messages",
                )
        return "".join(texts)
    raise ValidationError("content must be a string or a list of parts", "messages")


@bp.before_request
def _authenticate() -> None:
    request.max_content_length = _settings().api_max_body_bytes
    failure = check_bearer()
    if failure is not None:
        raise Unauthorized(failure.message, code="invalid_api_key")


def _model_ids(settings: Settings) -> list[str]:
    return [settings.openai_model_name, settings.openai_model_name + RAG_SUFFIX]


@bp.get("/models")
def models() -> Response:
    created = int(time.time())
    return jsonify(
        object="list",
        data=[
            {"id": m, "object": "model", "created": created, "owned_by": "local"}
            for m in _model_ids(_settings())
        ],
    )


@bp.post("/chat/completions")
def chat_completions() -> Any:
    settings = _settings()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    try:
        req = ChatRequest().load(body)
        messages = [
            {
                "role": "system" if m["role"] == "developer" else m["role"],
                "content": _text_content(m["content"]),
            }
            for m in req["messages"]
        ]
    except ValidationError as exc:
        raise BadRequest(f"invalid request: {exc.messages}") from None
    model = req["model"]
    if model not in _model_ids(settings):
        raise NotFound(
            f"model {model!r} does not exist; available: {', '.join(_model_ids(settings))}",
            code="model_not_found",
        )
    max_tokens = req["max_completion_tokens"] or req["max_tokens"] or settings.llm_max_tokens
    stop = req["stop"]
    payload = {
        "messages": messages,
        "rag": model.endswith(RAG_SUFFIX),
        "params": {
            "max_tokens": min(max_tokens, MAX_COMPLETION_TOKENS, settings.llm_n_ctx),
            "temperature": req["temperature"],
            "top_p": req["top_p"],
            "seed": req["seed"],
        },
        "stop": [stop] if isinstance(stop, str) else (stop or []),
    }
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    if req["stream"]:
        include_usage = bool((req["stream_options"] or {}).get("include_usage"))
        events = llm_jobs.stream(settings, "chat", payload)
        # Wait for the first event, so a busy or failed model is a proper HTTP error.
        first = next(events)
        return Response(
            stream_with_context(_sse(first, events, completion_id, model, include_usage)),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    done = llm_jobs.collect(settings, "chat", payload)
    message: dict[str, Any] = {"role": "assistant", "content": done["content"]}
    if done["reasoning"]:
        message["reasoning_content"] = done["reasoning"]
    return jsonify(
        id=completion_id,
        object="chat.completion",
        created=int(time.time()),
        model=model,
        choices=[{"index": 0, "message": message, "finish_reason": done["finish_reason"]}],
        usage=done["usage"],
        sources=done.get("sources", []),
    )


def _chunk(
    completion_id: str, model: str, created: int, choices: list[dict[str, Any]], **extra: Any
) -> str:
    data = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
        **extra,
    }
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _sse(
    first: dict[str, Any],
    events: Iterator[dict[str, Any]],
    completion_id: str,
    model: str,
    include_usage: bool,
) -> Iterator[str]:
    created = int(time.time())
    yield _chunk(
        completion_id,
        model,
        created,
        [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
    )
    try:
        for event in itertools.chain([first], events):
            if event["t"] in ("content", "reasoning"):
                key = "content" if event["t"] == "content" else "reasoning_content"
                yield _chunk(
                    completion_id,
                    model,
                    created,
                    [{"index": 0, "delta": {key: event["v"]}, "finish_reason": None}],
                )
            elif event["t"] == "done":
                yield _chunk(
                    completion_id,
                    model,
                    created,
                    [{"index": 0, "delta": {}, "finish_reason": event["finish_reason"]}],
                )
                if include_usage:
                    yield _chunk(completion_id, model, created, [], usage=event["usage"])
    except llm_jobs.JobError as exc:
        # Headers are gone already: report in-band, as OpenAI does, then end the stream.
        error = {"message": exc.message, "type": "server_error", "code": exc.status}
        yield f"data: {json.dumps({'error': error}, ensure_ascii=False)}\n\n"
    finally:
        close = getattr(events, "close", None)  # cancels the job if the client went away
        if close:
            close()
    yield "data: [DONE]\n\n"
