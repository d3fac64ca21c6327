"""The WeCom (企业微信) self-built app callback at /wecom.

WeCom always encrypts: every request is signed with ``msg_signature`` over the token,
timestamp, nonce and the ciphertext, and the plaintext names our CorpID as receiveid.
The URL check (GET) sends an encrypted ``echostr`` whose plaintext must come back within
1 s. Messages then take the Official Account's path: stored once by MsgId, answered by
the same Celery task, sent through WeCom's message/send; a question that is an FAQ entry's
is answered at once, as the (encrypted) passive reply. Where 微信客服's API is called
through this app, its ``kf_msg_or_event`` notifications come here too, and are queued as
on /kf (app/channels/kf/controller.py).
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, current_app, jsonify, request
from wechatpy.work.crypto import WeChatCrypto
from wechatpy.work.replies import TextReply

from app.channels.callbacks import install_error_handlers, keep_for_later, open_signed
from app.channels.kf import controller as kf_controller
from app.channels.wechat.security import (
    CallbackRejected,
    check_timestamp,
    decode_xml,
    parse_xml,
)
from app.messages import intake, spool
from app.messages.routing import Decision, route
from app.metrics import WECOM_CALLBACK_SECONDS, WECOM_CALLBACKS
from app.settings import Settings

log = logging.getLogger(__name__)

bp = Blueprint("wecom", __name__)

install_error_handlers(bp, WECOM_CALLBACKS)


def _settings() -> Settings:
    return current_app.extensions["settings"]


def _check_signed(settings: Settings, ciphertext: str) -> str:
    """Checks msg_signature over `ciphertext` and returns its plaintext (for our CorpID)."""
    return open_signed(
        settings.wecom_token,
        settings.wecom_aes_key,
        settings.wecom_corp_id,
        ciphertext,
        receiver="CorpID",
    )


@bp.before_request
def _guard() -> tuple[Response, int] | None:
    settings = _settings()
    if not settings.wecom_configured:
        return jsonify(error="WeCom is not configured (WECOM_TOKEN is empty)"), 503
    request.max_content_length = settings.wechat_max_body_bytes
    check_timestamp(request.args.get("timestamp", ""), settings.wechat_timestamp_window_s)
    return None


@bp.get("/wecom")
def verify_url() -> Response:
    """WeCom's URL check: the decrypted `echostr`, once its signature matched."""
    plain = _check_signed(_settings(), request.args.get("echostr", ""))
    return Response(plain, mimetype="text/plain")


@bp.post("/wecom")
def receive() -> Response | tuple[Response, int]:
    started = time.perf_counter()
    settings = _settings()
    envelope = parse_xml(decode_xml(request.get_data(cache=False)))
    fields = parse_xml(_check_signed(settings, envelope.get("Encrypt", "")))
    if kf_controller.is_notification(fields):
        return _kf_notification(settings, fields, started)
    fields = intake.accepted_fields(fields)
    agent = fields.get("AgentID", "")
    if agent and agent != settings.wecom_agent_id:
        raise CallbackRejected(400, "message is for a different AgentID")
    try:
        taken = intake.take_in("wecom", fields, settings, instant=True)
        decision, outcome = taken.decision, taken.outcome
    except spool.STORE_DOWN as exc:
        keep_for_later("wecom", fields, "custom", exc)
        decision, outcome = route(fields, settings), "spooled"
        if decision.action == "answer":
            decision = Decision("ignore")  # answered through the API once taken in
    WECOM_CALLBACKS.labels(outcome=outcome).inc()
    WECOM_CALLBACK_SECONDS.observe(time.perf_counter() - started)

    # As on /wechat, a retry of a passive reply gets the same reply: the first may be lost.
    if decision.action in ("reply", "handoff"):
        text = decision.text if decision.action == "reply" else settings.wecom_handoff_reply
        return _passive_reply(settings, fields, text)
    return Response("", mimetype="text/plain")


def _kf_notification(
    settings: Settings, fields: dict[str, str], started: float
) -> Response | tuple[Response, int]:
    """微信客服's notification, where this app is the one 微信客服's API is called through
    (微信客服 → API → 可调用接口的应用): its events come to this app's callback. Queued
    as /kf queues it, when the 微信客服 channel is on for this company; else acknowledged
    and dropped (logged), since nothing here could read the messages."""
    if not settings.kf_configured or settings.kf_corp_id != settings.wecom_corp_id:
        log.warning(
            "wecom: a 微信客服 notification, but 微信客服 is not configured for CorpID %s "
            "(KF_TOKEN, KF_CORP_ID): dropped",
            settings.wecom_corp_id,
        )
        outcome = "kf_dropped"
    elif kf_controller.queue_sync(fields):
        outcome = "kf_queued"
    else:
        WECOM_CALLBACKS.labels(outcome="queue_unavailable").inc()
        return jsonify(error="could not queue the sync, retry later"), 503
    WECOM_CALLBACKS.labels(outcome=outcome).inc()
    WECOM_CALLBACK_SECONDS.observe(time.perf_counter() - started)
    return Response("", mimetype="text/plain")


def _passive_reply(settings: Settings, fields: dict[str, str], text: str) -> Response:
    """An encrypted passive text reply (WeCom accepts no plaintext)."""
    reply = TextReply(
        source=fields["ToUserName"],
        target=fields["FromUserName"],
        agent=int(settings.wecom_agent_id),
        content=text,
    )
    crypto = WeChatCrypto(settings.wecom_token, settings.wecom_aes_key, settings.wecom_corp_id)
    nonce = request.args.get("nonce", "")
    xml = crypto.encrypt_message(reply.render(), nonce, str(int(time.time())))
    return Response(xml, mimetype="application/xml")
