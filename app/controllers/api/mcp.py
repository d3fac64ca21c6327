"""/mcp: the tool API as an MCP server (Streamable HTTP), for Dify's "Tools → MCP" and any
other MCP client.

The tools are the tool API's operations (app/controllers/api/tools.py ``OPERATIONS``): the
same names (operationId), descriptions, input schemas (generated from the same marshmallow
request schemas, which also validate the arguments here) and use cases (app/dify/tools.py).
Only the multipart upload has no MCP form (a tool call's arguments are JSON): MCP clients
send an image by URL.

How it runs inside a WSGI process (gunicorn gthread, `flask run`): the official SDK's
Streamable HTTP session manager (stateless, JSON responses: every POST is one JSON-RPC
exchange, no session to keep between the processes of a deployment) is an ASGI app. Each
web process starts, at its first /mcp request (after gunicorn's fork), one event loop in a
daemon thread that runs the manager; a2wsgi's ASGIMiddleware hands it each request from the
WSGI thread that received it. A tool call runs in a worker thread of that loop (anyio's
pool), inside a Flask request context, so the loop never blocks on the knowledge base, the
model or the database.

The view in front of the bridge authenticates first, with the tool API's bearer keys: a
missing, malformed or unknown key is an HTTP 401 with ``WWW-Authenticate: Bearer`` and a
JSON-RPC error body, before the SDK sees the request. A tool that fails answers a tool
error (``isError: true``) naming what was wrong: invalid arguments (the schema's words),
an unreachable model or knowledge base, or, for anything unexpected, a request id to find
in the log; never a traceback or an HTTP 500.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import threading
from functools import partial
from typing import Any

import anyio.to_thread
import mcp_types as types
from a2wsgi import ASGIMiddleware
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, Response, current_app, g, request
from marshmallow import ValidationError
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from werkzeug.exceptions import HTTPException

from app.controllers import errors as http_errors
from app.controllers.api import tools as tool_api
from app.controllers.api.auth import AuthFailure, check_bearer
from app.errors import ServiceError

log = logging.getLogger(__name__)
# The SDK logs every stateless request's end ("Terminating session: None") at INFO.
logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)

bp = Blueprint("mcp", __name__)

SERVER_NAME = "wxcs-customer-service"
INSTRUCTIONS = (
    "Tools of a shop's private AI customer service. Before answering a customer, call "
    "lookupFaq: when found is true, send its answer verbatim. Otherwise answerCustomerQuestion "
    "writes a grounded answer with sources (or searchKnowledgeBase returns passages for you to "
    "answer from). For an image, read its text with ocrImageFromUrl and pass it as image_text. "
    "When the customer asks for a person, complains, or the knowledge cannot help, call "
    "handOffToHuman once and show the customer its message."
)
#: The key of the request's API key id in the WSGI environ handed to the bridge.
KEY_ID = "wxcs.api_key_id"
#: JSON-RPC error code of a refused API key (the MCP spec leaves auth to HTTP: the status is
#: 401; -32001 is the server-defined code MCP servers commonly use for it).
UNAUTHORIZED = -32001
#: Tools that only read: the MCP annotations let a client skip confirmation for them.
_READ_ONLY = {
    "searchKnowledgeBase",
    "lookupFaq",
    "ocrImageFromUrl",
    "answerCustomerQuestion",
    "listUnansweredQuestions",
}


def operations() -> dict[str, tool_api.Operation]:
    """The tool API's operations that take JSON, by tool name."""
    return {
        op.operation_id: op for op in tool_api.OPERATIONS if op.content_type == "application/json"
    }


def _input_schema(converter: Any, op: tool_api.Operation) -> dict[str, Any]:
    """The request schema as JSON Schema (OpenAPI 3.0's schema objects, as /openapi.json
    publishes them, with nothing nullable); the NUL pattern is left out for the model's
    sake (the schema still refuses NULs when it loads the arguments)."""
    schema = converter.schema2jsonschema(op.request)
    for prop in schema.get("properties", {}).values():
        prop.pop("pattern", None)
    return schema


def tool_list() -> list[types.Tool]:
    plugin = MarshmallowPlugin()
    APISpec(title="mcp", version="1", openapi_version="3.0.3", plugins=[plugin])
    return [
        types.Tool(
            name=name,
            title=op.summary,
            description=op.description,
            input_schema=_input_schema(plugin.converter, op),
            annotations=types.ToolAnnotations(
                title=op.summary,
                read_only_hint=name in _READ_ONLY,
                destructive_hint=False,
                idempotent_hint=name in _READ_ONLY,
                open_world_hint=name == "ocrImageFromUrl",
            ),
        )
        for name, op in operations().items()
    ]


def _failed(message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], is_error=True
    )


def run_tool(
    app: Flask, op: tool_api.Operation, arguments: dict[str, Any], environ: dict[str, Any] | None
) -> types.CallToolResult:
    """One tool call, in a worker thread: validated by the operation's request schema, run by
    its use case inside a request context (the database session is removed at its end)."""
    context = (
        app.request_context(environ)
        if environ is not None
        else app.test_request_context("/mcp", method="POST")
    )
    with context:
        g.api_key_id = (environ or {}).get(KEY_ID)
        try:
            body = op.request().load(arguments)
            result = op.run(body)
        except ValidationError as exc:
            return _failed(f"invalid arguments: {tool_api._flatten(exc.messages)}")
        except ServiceError as exc:
            return _failed(f"{exc.code}: {exc.message}")
        except HTTPException as exc:
            error = http_errors.from_http(exc)
            return _failed(f"{error.code}: {error.message}")
        except Exception as exc:  # logged with a request id; the message quotes none of it
            error = http_errors.unexpected(exc)
            return _failed(f"{error.code}: {error.message}")
    text = json.dumps(result, ensure_ascii=False)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content=result
    )


def build_server(app: Flask) -> Server:
    tools_by_name = operations()
    listed = tool_list()

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listed)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        op = tools_by_name.get(params.name)
        if op is None:
            return _failed(f"unknown tool {params.name!r}; tools: {', '.join(tools_by_name)}")
        environ = getattr(getattr(ctx, "request", None), "scope", {}).get("wsgi_environ")
        call = partial(run_tool, app, op, dict(params.arguments or {}), environ)
        return await anyio.to_thread.run_sync(call)

    return Server(
        SERVER_NAME,
        version="1.0.0",
        title="WeChat AI customer service",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


class Bridge:
    """The SDK's session manager on an event loop of this process, as a WSGI app."""

    def __init__(self, app: Flask) -> None:
        settings = app.extensions["settings"]
        self.manager = StreamableHTTPSessionManager(
            app=build_server(app),
            json_response=True,
            stateless=True,
            # Host/Origin checks guard servers that take requests without credentials from
            # a browser on localhost; this one needs an API key on every request, and
            # behind a proxy the Host is the public name, which the SDK cannot know.
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            max_request_body_size=settings.api_max_body_bytes,
        )
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        ready = threading.Event()
        threading.Thread(target=self.loop.run_forever, name="mcp-event-loop", daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._serve(ready), self.loop)
        if not ready.wait(30):
            raise RuntimeError("the MCP session manager did not start")
        self.wsgi = ASGIMiddleware(self.manager.handle_request, loop=self.loop)  # type: ignore[arg-type]

    async def _serve(self, ready: threading.Event) -> None:
        async with self.manager.run():
            ready.set()
            await asyncio.Event().wait()  # for the life of the process


_bridge_lock = threading.Lock()


def bridge(app: Flask) -> Bridge:
    """This process's bridge, started at its first use (so after gunicorn forks)."""
    found = app.extensions.get("mcp_bridge")
    if found is not None and found.pid == os.getpid():
        return found
    with _bridge_lock:
        found = app.extensions.get("mcp_bridge")
        if found is None or found.pid != os.getpid():
            found = app.extensions["mcp_bridge"] = Bridge(app)
        return found


def rpc_error(status: int, code: int, message: str, **headers: str) -> Response:
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}
    resp = Response(json.dumps(body), status=status, mimetype="application/json")
    resp.headers.update(headers)
    return resp


def _unauthorized(failure: AuthFailure) -> Response:
    challenge = 'Bearer realm="wxcs"'
    if failure.reason != "missing":
        challenge += ', error="invalid_token"'
    return rpc_error(401, UNAUTHORIZED, failure.message, **{"WWW-Authenticate": challenge})


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException) -> Response:
    error = http_errors.from_http(exc)
    return rpc_error(error.status, -32600, error.message)


@bp.errorhandler(Exception)
def _other(exc: Exception) -> Response:
    error = http_errors.unexpected(exc)
    return rpc_error(error.status, -32603, error.message, **error.headers)


@bp.route("/mcp", methods=["GET", "POST", "DELETE"], strict_slashes=False)
def endpoint() -> Response:
    request.max_content_length = current_app.extensions["settings"].api_max_body_bytes
    failure = check_bearer()
    if failure is not None:
        return _unauthorized(failure)
    body = request.get_data(cache=True)  # 413 past API_MAX_BODY_BYTES
    environ = dict(request.environ)
    environ.update({"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
    environ.pop("wsgi.input_terminated", None)
    environ[KEY_ID] = g.api_key_id
    return Response.from_app(bridge(current_app._get_current_object()).wsgi, environ, buffered=True)
