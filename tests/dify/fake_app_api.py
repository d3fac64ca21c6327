"""Dify's service API for a chat app (POST /v1/chat-messages; GET /v1/messages,
/v1/conversations, /v1/info and /v1/parameters), played for the tests.

Outside the building, so simulated, but as Dify answers: Bearer app keys, the required
fields its request parser enforces, conversations that belong to one end user, and
errors as ``{"code", "message", "status"}`` with the codes of Dify's service API
(api/controllers/service_api/app/error.py, libs/external_api.py). A DeepSeek-R1 model in
a Dify app puts its reasoning in the answer text as a ``<think>`` block, as here.

Tests script failures with ``fail_next`` and read what was asked from ``requests``.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify, request

#: Dify's error bodies, by the name tests use.
ERRORS: dict[str, tuple[int, str, str]] = {
    "app_unavailable": (
        400,
        "app_unavailable",
        "App unavailable, please check your app configurations.",
    ),
    "provider_not_initialize": (
        400,
        "provider_not_initialize",
        "No valid model provider credentials found. Please go to Settings -> Model Provider "
        "to complete your provider credentials.",
    ),
    "completion_request_error": (400, "completion_request_error", "Completion request failed."),
    "rate_limit": (429, "too_many_requests", "Too many requests. Please try again later."),
    "internal": (500, "internal_server_error", "The server encountered an internal error."),
}


@dataclass
class FakeDifyApp:
    api_key: str
    name: str = "云朵小铺客服"
    #: Dify's app modes: chat, advanced-chat (a chatflow), agent-chat, completion, workflow.
    mode: str = "advanced-chat"
    #: False: a Dify older than GET /info (0.6), where only /parameters tells it is there.
    has_info: bool = True
    #: How long a "slow" answer takes (fail_next("slow")).
    slow_s: float = 3.0
    #: How long every answer takes (the app's model writing).
    latency_s: float = 0.0
    #: Each conversation's messages, oldest first, as GET /messages lists them. Like Dify,
    #: a message is stored when the app starts answering, its answer when it is done.
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: The app's answer to ``query`` in conversation turn ``turn`` (1-based).
    answer: Any = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    conversations: dict[str, str] = field(default_factory=dict)  # id -> end user
    turns: dict[str, int] = field(default_factory=dict)
    _failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, kind: str, times: int = 1) -> None:
        """The next ``times`` valid requests fail: a key of ERRORS, "gateway" (a proxy's
        HTML 502 while Dify restarts) or "slow" (the answer takes ``slow_s``, longer than
        the caller waits; Dify still finishes and stores it)."""
        with self._lock:
            self._failures += [kind] * times

    def forget(self, conversation_id: str) -> None:
        """The conversation was deleted in Dify (by an editor, or by Dify's cleanup)."""
        with self._lock:
            self.conversations.pop(conversation_id, None)

    def asked(self, user: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r.get("user") == user]

    def default_answer(self, query: str, turn: int) -> str:
        return f"<think>顾客问的是：{query}</think>\n\n**第{turn}轮**：您问的是“{query}”。"


def _error(status: int, code: str, message: str) -> Response:
    resp = jsonify({"code": code, "message": message, "status": status})
    resp.status_code = status
    return resp


def create_fake_dify_app(fake: FakeDifyApp) -> Flask:
    app = Flask("fake-dify")

    def unauthorized() -> Response | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return _error(
                401,
                "unauthorized",
                "Authorization header must be provided and start with 'Bearer'",
            )
        if auth.removeprefix("Bearer ") != fake.api_key:
            return _error(401, "unauthorized", "Access token is invalid")
        return None

    @app.get("/v1/info")
    def info() -> Response:
        if not fake.has_info:
            return _error(404, "not_found", "The requested URL was not found on the server.")
        refused = unauthorized()
        return refused or jsonify(
            {
                "name": fake.name,
                "description": "",
                "tags": [],
                "mode": fake.mode,
                "author_name": "editor",
            }
        )

    @app.get("/v1/parameters")
    def parameters() -> Response:
        refused = unauthorized()
        return refused or jsonify(
            {"opening_statement": "", "user_input_form": [], "file_upload": {}}
        )

    @app.get("/v1/messages")
    def list_messages() -> Response:
        if refused := unauthorized():
            return refused
        user, conversation = request.args.get("user"), request.args.get("conversation_id")
        if not user or not conversation:
            return _error(400, "invalid_param", "user and conversation_id are required")
        limit = request.args.get("limit", 20, type=int)
        with fake._lock:
            if fake.conversations.get(conversation) != user:
                return _error(404, "not_found", "Conversation Not Exists.")
            found = [dict(m) for m in fake.messages.get(conversation, [])]
        return jsonify({"limit": limit, "has_more": len(found) > limit, "data": found[-limit:]})

    @app.get("/v1/conversations")
    def list_conversations() -> Response:
        if refused := unauthorized():
            return refused
        user = request.args.get("user")
        if not user:
            return _error(400, "invalid_param", "user is required")
        limit = request.args.get("limit", 20, type=int)
        with fake._lock:
            mine = [
                {
                    "id": cid,
                    "name": "",
                    "inputs": {},
                    "status": "normal",
                    "introduction": "",
                    "created_at": fake.messages[cid][0]["created_at"],
                    "updated_at": fake.messages[cid][-1]["created_at"],
                }
                for cid, owner in fake.conversations.items()
                if owner == user and fake.messages.get(cid)
            ]
        mine.sort(key=lambda c: c["updated_at"], reverse=True)  # Dify's default: -updated_at
        return jsonify({"limit": limit, "has_more": len(mine) > limit, "data": mine[:limit]})

    @app.post("/v1/chat-messages")
    def chat_messages() -> Response:
        if refused := unauthorized():
            return refused
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error(
                400,
                "bad_request",
                "The browser (or proxy) sent a request that this server could not understand.",
            )
        for name, kind in (("inputs", dict), ("query", str), ("user", str)):
            if not isinstance(body.get(name), kind):
                return _error(400, "invalid_param", f"{name} is required")
        if body.get("response_mode") not in ("blocking", "streaming"):
            return _error(400, "invalid_param", "response_mode must be blocking or streaming")
        with fake._lock:
            fake.requests.append(body)
            failure = fake._failures.pop(0) if fake._failures else None
        if failure == "gateway":
            return Response(
                "<html><body><h1>502 Bad Gateway</h1></body></html>", 502, mimetype="text/html"
            )
        if failure is not None and failure != "slow":
            return _error(*ERRORS[failure])
        user, conversation = body["user"], body.get("conversation_id") or ""
        with fake._lock:
            if conversation:
                if fake.conversations.get(conversation) != user:
                    return _error(404, "not_found", "Conversation Not Exists.")
            else:
                conversation = str(uuid.uuid4())
                fake.conversations[conversation] = user
            fake.turns[conversation] = turn = fake.turns.get(conversation, 0) + 1
            message_id = str(uuid.uuid4())
            stored: dict[str, Any] = {
                "id": message_id,
                "conversation_id": conversation,
                "inputs": body["inputs"],
                "query": body["query"],
                "answer": "",
                "message_files": [],
                "feedback": None,
                "retriever_resources": [],
                "status": "normal",
                "error": None,
                "created_at": int(time.time()),
            }
            fake.messages.setdefault(conversation, []).append(stored)
        if failure == "slow":
            time.sleep(fake.slow_s)
        elif fake.latency_s:
            time.sleep(fake.latency_s)
        text = (fake.answer or fake.default_answer)(body["query"], turn)
        with fake._lock:
            stored["answer"] = text
        return jsonify(
            {
                "event": "message",
                "task_id": str(uuid.uuid4()),
                "id": message_id,
                "message_id": message_id,
                "conversation_id": conversation,
                "mode": "advanced-chat",
                "answer": text,
                "metadata": {
                    "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
                    "retriever_resources": [
                        {
                            "position": 1,
                            "dataset_id": "ds-1",
                            "dataset_name": "售后政策",
                            "document_id": "doc-1",
                            "document_name": "售后服务政策.md",
                            "segment_id": "seg-1",
                            "score": 0.87,
                            "content": "签收后7天内可无理由退货。",
                        }
                    ],
                },
                "created_at": int(time.time()),
            }
        )

    return app
