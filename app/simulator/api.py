"""WeChat's API side: the endpoints our service calls through WECHAT_API_BASE_URL.

Point the service (and wechatpy's token URL, which ignores API_BASE_URL) at the
URL of ``serve_in_thread(create_simulator_app(sim))``; the paths are WeChat's own,
``/cgi-bin/...``. Test-only controls live under ``/_sim/`` (see ``control.py``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, Response, request

from .control import create_control_blueprint
from .server import ServerHandle, serve_in_thread
from .state import Media, WeChatAPISimulator
from .wire import gateway_error_page, json_response, media_response

__all__ = [
    "ServerHandle",
    "WeChatAPISimulator",
    "create_simulator_app",
    "serve_in_thread",
]

View = Callable[[], "dict[str, Any] | Response"]


def create_simulator_app(sim: WeChatAPISimulator) -> Flask:
    """A Flask app serving ``sim`` over HTTP, with WeChat's paths and error shapes."""
    app = Flask("wechat_api_simulator", static_folder=None)
    app.extensions["wechat_simulator"] = sim

    endpoint = endpoint_decorator(sim)

    @app.get("/cgi-bin/token")
    @endpoint(token_endpoint=True)
    def token() -> dict[str, Any]:
        a = request.args
        return sim.api_token(a.get("grant_type"), a.get("appid"), a.get("secret"))

    @app.post("/cgi-bin/stable_token")
    @endpoint(token_endpoint=True)
    def stable_token() -> dict[str, Any]:
        return sim.api_stable_token(_json_body())

    @app.post("/cgi-bin/message/custom/send")
    @endpoint()
    def custom_send() -> dict[str, Any]:
        return sim.api_custom_send(request.args.get("access_token"), _json_body())

    @app.post("/cgi-bin/message/custom/typing")
    @endpoint()
    def custom_typing() -> dict[str, Any]:
        return sim.api_typing(request.args.get("access_token"), _json_body())

    add_common_routes(app, sim, video_as_url=True)
    return app


def endpoint_decorator(
    sim: WeChatAPISimulator,
) -> Callable[..., Callable[[View], Callable[[], Response]]]:
    """``@endpoint(token_endpoint=...)``: runs a view through faults, counting and records."""

    def endpoint(*, token_endpoint: bool = False) -> Callable[[View], Callable[[], Response]]:
        def decorate(view: View) -> Callable[[], Response]:
            @wraps(view)
            def handle() -> Response:
                return _dispatch(sim, view, token_endpoint)

            return handle

        return decorate

    return endpoint


def add_common_routes(app: Flask, sim: WeChatAPISimulator, *, video_as_url: bool) -> None:
    """``media/get``, a recorded 404 for APIs not simulated, and the ``/_sim/`` controls.

    ``video_as_url``: the Official Account answers a video's media/get with JSON
    ``{"video_url"}``; WeCom sends the bytes like any other media."""
    endpoint = endpoint_decorator(sim)

    @app.get("/cgi-bin/media/get")
    @endpoint()
    def media_get() -> dict[str, Any] | Response:
        result = sim.api_media_get(request.args.get("access_token"), request.args.get("media_id"))
        if not isinstance(result, Media):
            return result
        if result.is_video and video_as_url:
            return {"video_url": f"{request.host_url}_sim/media/{result.media_id}"}
        return media_response(result.data, result.content_type, result.filename)

    @app.route("/cgi-bin/<path:rest>", methods=["GET", "POST"])
    def not_simulated(rest: str) -> Response:
        # Recorded, so a test can see the service used an API the simulator lacks.
        sim.record_call(request.path, request.method, None, 404, False)
        return Response(f"not simulated: /cgi-bin/{rest}\n", status=404, content_type="text/plain")

    app.register_blueprint(create_control_blueprint(sim))


def _dispatch(sim: WeChatAPISimulator, view: View, token_endpoint: bool) -> Response:
    path, method = request.path, request.method
    if token_endpoint:
        sim.count_token_request(path)
    fault = sim.take_fault(path)
    if fault is not None:
        if fault.delay:
            time.sleep(fault.delay)
        if fault.http_status != 200:
            sim.record_call(path, method, None, fault.http_status, True)
            return gateway_error_page(fault.http_status)
        if fault.errcode != 0:
            sim.record_call(path, method, fault.errcode, 200, True)
            return json_response(sim.error(fault.errcode, fault.errmsg))
    result = view()
    if isinstance(result, Response):
        sim.record_call(path, method, 0, result.status_code, fault is not None)
        return result
    sim.record_call(path, method, int(result.get("errcode", 0)), 200, fault is not None)
    return json_response(result)


def _json_body() -> Any:
    """WeChat parses the body as JSON whatever the Content-Type says."""
    try:
        return json.loads(request.get_data() or b"null")
    except (ValueError, UnicodeDecodeError):
        return None
