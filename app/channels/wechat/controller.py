"""The WeChat Official Account callback at /wechat.

Acknowledges within milliseconds: verify, decrypt, store once (MsgId), queue, answer
empty. Everything slow happens in Celery tasks and goes back through the
customer-service API; in passive mode (app/channels/wechat/delivery.py) a try is held while
the answer is written and the answer is the reply.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, current_app, jsonify, request
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.replies import TextReply, TransferCustomerServiceReply

from app.channels.callbacks import install_error_handlers, keep_for_later, open_signed
from app.channels.wechat import delivery
from app.channels.wechat.security import (
    CallbackRejected,
    check_signature,
    check_timestamp,
    decode_xml,
    parse_xml,
)
from app.messages import intake, spool
from app.messages.routing import Decision, route
from app.metrics import CALLBACK_SECONDS, CALLBACKS
from app.settings import Settings

bp = Blueprint("wechat", __name__)
log = logging.getLogger(__name__)


def _settings() -> Settings:
    return current_app.extensions["settings"]


install_error_handlers(bp, CALLBACKS)


@bp.before_request
def _guard() -> tuple[Response, int] | None:
    settings = _settings()
    if not settings.wechat_token:
        return jsonify(error="WeChat is not configured (WECHAT_TOKEN is empty)"), 503
    request.max_content_length = settings.wechat_max_body_bytes
    args = request.args
    check_timestamp(args.get("timestamp", ""), settings.wechat_timestamp_window_s)
    check_signature(
        settings.wechat_token,
        args.get("signature", ""),
        args.get("timestamp", ""),
        args.get("nonce", ""),
    )
    return None


@bp.get("/wechat")
def verify_url() -> Response:
    """WeChat's URL check: echo `echostr` back once the signature matched."""
    return Response(request.args.get("echostr", ""), mimetype="text/plain")


@bp.post("/wechat")
def receive() -> Response:
    started = time.perf_counter()
    arrived = time.monotonic()
    settings = _settings()
    fields, xml = _read_message(settings)
    fields = intake.accepted_fields(fields)
    decision = route(fields, settings)
    incoming = intake.incoming_from("wechat", fields, decision)
    try:
        reply = delivery.respond(incoming, decision, settings, arrived)
    except spool.STORE_DOWN as exc:
        reply = _kept(fields, decision, settings, exc)
    CALLBACKS.labels(outcome=reply.outcome).inc()
    CALLBACK_SECONDS.observe(time.perf_counter() - started)
    if reply.kind == "text":
        message = parse_message(xml)
        return _passive_reply(settings, TextReply(content=reply.text, message=message).render())
    if reply.kind == "handoff":
        message = parse_message(xml)
        return _passive_reply(settings, TransferCustomerServiceReply(message=message).render())
    return Response("", mimetype="text/plain")


def _kept(
    fields: dict[str, str], decision: Decision, settings: Settings, exc: Exception
) -> delivery.Reply:
    """The reply to a message the store could not take: kept in the spool, and answered
    as far as that can be done without the store."""
    held = settings.wechat_reply_mode == "passive"
    keep_for_later("wechat", fields, "passive" if held else "custom", exc)
    if decision.action == "reply":
        return delivery.Reply("text", decision.text, "spooled")
    if decision.action == "handoff":
        return delivery.Reply("handoff", outcome="spooled")
    if decision.action == "answer" and held:  # its answer rides on the next message
        return delivery.Reply("text", settings.wechat_passive_pending_text, "spooled")
    return delivery.Reply("empty", outcome="spooled")


def _read_message(settings: Settings) -> tuple[dict[str, str], str]:
    encrypted = request.args.get("encrypt_type", "raw").lower() == "aes"
    if not encrypted and settings.wechat_require_encryption:
        # WeChat marks every safe- and compatibility-mode callback encrypt_type=aes; one
        # without it is a plain-mode account or a forger who knows only the Token.
        raise CallbackRejected(
            403,
            "plaintext callback refused: WECHAT_REQUIRE_ENCRYPTION is on; set the account's "
            "message encryption (消息加解密方式) to safe mode (安全模式)",
        )
    text = decode_xml(request.get_data(cache=False))
    envelope = parse_xml(text)
    if not encrypted:
        return envelope, text
    if not settings.wechat_aes_key:
        raise CallbackRejected(400, "encrypted message but WECHAT_AES_KEY is not set")
    plain = open_signed(
        settings.wechat_token,
        settings.wechat_aes_key,
        settings.wechat_app_id,
        envelope.get("Encrypt", ""),
    )
    return parse_xml(plain), plain


def _passive_reply(settings: Settings, xml: str) -> Response:
    if request.args.get("encrypt_type", "raw").lower() == "aes":
        crypto = WeChatCrypto(
            settings.wechat_token, settings.wechat_aes_key, settings.wechat_app_id
        )
        xml = crypto.encrypt_message(xml, request.args.get("nonce", ""))
    return Response(xml, mimetype="application/xml")
