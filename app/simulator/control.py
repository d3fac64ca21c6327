"""``/_sim/``: inspect and steer a simulator that runs in another process.

Not part of WeChat. Bind the simulator to 127.0.0.1: these routes are unauthenticated.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import Blueprint, Response, request

from .state import WeChatAPISimulator
from .wire import json_response, media_response

#: Upper bound for a server-side wait, so a forgotten request cannot hang a worker forever.
MAX_WAIT_S = 120.0


def create_control_blueprint(sim: WeChatAPISimulator) -> Blueprint:
    bp = Blueprint("sim_control", __name__, url_prefix="/_sim")

    @bp.get("/sent")
    def sent() -> Response:
        return json_response({"sent": sim.sent})

    @bp.get("/typing")
    def typing() -> Response:
        return json_response({"typing": sim.typing})

    @bp.get("/calls")
    def calls() -> Response:
        return json_response(
            {
                "calls": sim.calls,
                "token_requests": sim.token_requests,
                "pending_faults": sim.pending_faults,
            }
        )

    @bp.get("/wait_sent")
    def wait_sent() -> Response:
        """Long poll: answers once ``n`` messages were sent, or 408 after ``timeout`` s."""
        try:
            n = int(request.args.get("n", "1"))
            timeout = min(float(request.args.get("timeout", "5")), MAX_WAIT_S)
        except ValueError:
            return _bad("n must be an integer and timeout a number")
        try:
            return json_response({"sent": sim.wait_for_sent(n, timeout)})
        except TimeoutError as exc:
            return json_response({"error": str(exc), "sent": sim.sent}, status=408)

    @bp.post("/inject")
    def inject() -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or "path_suffix" not in body or "errcode" not in body:
            return _bad("JSON body needs path_suffix and errcode")
        try:
            sim.inject(
                str(body["path_suffix"]),
                int(body["errcode"]),
                times=int(body.get("times", 1)),
                errmsg=body.get("errmsg"),
                http_status=int(body.get("http_status", 200)),
                delay=float(body.get("delay", 0)),
            )
        except (TypeError, ValueError) as exc:
            return _bad(str(exc))
        return json_response({"ok": True, "pending_faults": sim.pending_faults})

    @bp.post("/reset")
    def reset() -> Response:
        sim.reset()
        return json_response({"ok": True})

    @bp.post("/expire_tokens")
    def expire_tokens() -> Response:
        sim.expire_all_tokens()
        return json_response({"ok": True})

    @bp.post("/token")
    def token() -> Response:
        """A valid access token without counting a token request (for demos and CLIs)."""
        return json_response({"access_token": sim.issue_token(), "expires_in": sim.token_ttl})

    @bp.post("/media")
    def add_media() -> Response:
        parsed = _media_from_request()
        if isinstance(parsed, str):
            return _bad(parsed)
        media_id, data, content_type, filename = parsed
        sim.add_media(media_id, data, content_type, filename)
        return json_response({"ok": True, "media_id": media_id})

    @bp.get("/media/<media_id>")
    def raw_media(media_id: str) -> Response:
        """Where a video's ``video_url`` points; no token, like WeChat's CDN."""
        media = sim.raw_media(media_id)
        if media is None:
            return json_response({"errcode": 40007, "errmsg": "invalid media_id"})
        return media_response(media.data, media.content_type, media.filename)

    return bp


def _media_from_request() -> tuple[str, bytes, str, str | None] | str:
    """Accepts JSON ``{media_id, data_base64, content_type?, filename?}`` or a multipart
    form with ``media_id`` and a file field ``media``; returns an error text otherwise."""
    if request.files:
        upload = request.files.get("media")
        media_id = request.form.get("media_id")
        if upload is None or not media_id:
            return "multipart form needs media_id and a file field named media"
        content_type = request.form.get("content_type") or upload.mimetype or "image/jpeg"
        return media_id, upload.read(), content_type, request.form.get("filename")
    body: Any = request.get_json(silent=True)
    if not isinstance(body, dict) or not body.get("media_id") or "data_base64" not in body:
        return "JSON body needs media_id and data_base64"
    try:
        data = base64.b64decode(body["data_base64"], validate=True)
    except (binascii.Error, TypeError):
        return "data_base64 is not valid base64"
    return (
        str(body["media_id"]),
        data,
        str(body.get("content_type") or "image/jpeg"),
        body.get("filename"),
    )


def _bad(message: str) -> Response:
    return json_response({"error": message}, status=400)
