"""The 微信客服 simulator over HTTP: the kf API with WeCom's paths (point KF_API_BASE_URL
here), the common ``/_sim/`` controls, and ``/_sim/kf/`` to play customers and servicers
from another process (``flask kf ...``). With a callback configured (``callback``), each
customer action is followed by WeCom's notification to our service's /kf."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, request

from .api import _json_body, add_common_routes, endpoint_decorator
from .kf import KfSimulator
from .kf_callback import KfCallbackClient
from .kf_rules import SEND_MSG, SEND_MSG_ON_EVENT, STATE_GET, STATE_TRANS, SYNC_MSG
from .wecom import GETTOKEN
from .wire import json_response


def create_kf_simulator_app(sim: KfSimulator, callback: KfCallbackClient | None = None) -> Flask:
    """A Flask app serving ``sim``; ``callback`` notifies our service after ``/_sim/kf/``
    customer actions (without one, the notifications wait in ``take_notifications``)."""
    app = Flask("kf_api_simulator", static_folder=None)
    app.extensions["kf_simulator"] = sim
    endpoint = endpoint_decorator(sim)

    def token() -> str | None:
        return request.args.get("access_token")

    @app.get(GETTOKEN)
    @endpoint(token_endpoint=True)
    def gettoken() -> dict[str, Any]:
        return sim.api_gettoken(request.args.get("corpid"), request.args.get("corpsecret"))

    @app.post(SYNC_MSG)
    @endpoint()
    def sync_msg() -> dict[str, Any]:
        return sim.api_sync_msg(token(), _json_body())

    @app.post(SEND_MSG)
    @endpoint()
    def send_msg() -> dict[str, Any]:
        return sim.api_send_msg(token(), _json_body())

    @app.post(SEND_MSG_ON_EVENT)
    @endpoint()
    def send_msg_on_event() -> dict[str, Any]:
        return sim.api_send_msg_on_event(token(), _json_body())

    @app.post(STATE_GET)
    @endpoint()
    def service_state_get() -> dict[str, Any]:
        return sim.api_service_state_get(token(), _json_body())

    @app.post(STATE_TRANS)
    @endpoint()
    def service_state_trans() -> dict[str, Any]:
        return sim.api_service_state_trans(token(), _json_body())

    def notified(result: dict[str, Any]) -> Response:
        deliveries = []
        for note in sim.take_notifications():
            if callback is None:
                continue
            delivery = callback.notify(note.open_kfid, note.token)
            deliveries.append({"ok": delivery.ok, "error": delivery.reply_error})
        return json_response(dict(result, callbacks=deliveries))

    @app.post("/_sim/kf/customer")
    def customer() -> Response:
        """A customer writes: JSON ``{external_userid, content, open_kfid?}``."""
        body = request.get_json(silent=True) or {}
        if not body.get("external_userid") or not body.get("content"):
            return json_response({"error": "JSON body needs external_userid and content"}, 400)
        msgid = sim.customer_sends(
            str(body["external_userid"]), str(body["content"]), open_kfid=body.get("open_kfid")
        )
        return notified({"msgid": msgid})

    @app.post("/_sim/kf/enter")
    def enter() -> Response:
        """A customer opens the chat: JSON ``{external_userid, open_kfid?, scene?}``."""
        body = request.get_json(silent=True) or {}
        if not body.get("external_userid"):
            return json_response({"error": "JSON body needs external_userid"}, 400)
        code = sim.customer_enters(
            str(body["external_userid"]),
            open_kfid=body.get("open_kfid"),
            scene=str(body.get("scene") or ""),
        )
        return notified({"welcome_code": code})

    @app.post("/_sim/kf/servicer")
    def servicer() -> Response:
        """A servicer takes the session: JSON ``{external_userid, servicer_userid}``."""
        body = request.get_json(silent=True) or {}
        if not body.get("external_userid") or not body.get("servicer_userid"):
            return json_response({"error": "JSON body needs external_userid, servicer_userid"}, 400)
        sim.servicer_takes(str(body["external_userid"]), str(body["servicer_userid"]))
        return notified({"ok": True})

    @app.get("/_sim/kf/state")
    def state() -> Response:
        customer_id = request.args.get("external_userid", "")
        session = sim.session(customer_id, request.args.get("open_kfid"))
        return json_response({"service_state": session.state, "servicer_userid": session.servicer})

    add_common_routes(app, sim, video_as_url=False)
    return app
