"""The WeChat Official Account callback at /wechat.

Acknowledges within milliseconds: verify, decrypt, store once (MsgId), queue, answer
empty. Everything slow happens in Celery tasks and goes back through the
customer-service API.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy.exc import SQLAlchemyError
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.replies import TextReply, TransferCustomerServiceReply
from werkzeug.exceptions import RequestEntityTooLarge

from app.channels.wechat.security import (
    CallbackRejected,
    check_signature,
    check_timestamp,
    decrypt,
    parse_xml,
)
from app.metrics import CALLBACK_SECONDS, CALLBACKS
from app.services import inbound
from app.services.routing import route
from app.settings import Settings

bp = Blueprint("wechat", __name__)
log = logging.getLogger(__name__)

REQUIRED_FIELDS = ("ToUserName", "FromUserName", "CreateTime", "MsgType")


def _settings() -> Settings:
    return current_app.extensions["settings"]


@bp.errorhandler(CallbackRejected)
def _rejected(exc: CallbackRejected) -> tuple[Response, int]:
    CALLBACKS.labels(outcome=f"rejected_{exc.status}").inc()
    return jsonify(error=exc.reason), exc.status


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc: RequestEntityTooLarge) -> tuple[Response, int]:
    CALLBACKS.labels(outcome="rejected_413").inc()
    return jsonify(error="body too large"), 413


@bp.errorhandler(SQLAlchemyError)
def _store_down(exc: SQLAlchemyError) -> tuple[Response, int]:
    # Not acknowledged, so WeChat retries; the customer's message is not silently dropped.
    log.error("could not store a WeChat message: %s", exc)
    CALLBACKS.labels(outcome="store_unavailable").inc()
    return jsonify(error="message store unavailable, retry later"), 503


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
    settings = _settings()
    fields, xml = _read_message(settings)
    missing = [f for f in REQUIRED_FIELDS if not fields.get(f)]
    if missing:
        raise CallbackRejected(400, f"missing fields: {', '.join(missing)}")
    decision = route(fields, settings)
    msg_type = fields["MsgType"].lower()
    event = fields.get("Event", "").lower()
    incoming = inbound.IncomingMessage(
        channel="wechat",
        dedup_key=fields.get("MsgId") or f"{fields['FromUserName']}:{fields['CreateTime']}:{event}",
        account=fields["ToUserName"],
        customer=fields["FromUserName"],
        msg_type=f"event:{event}" if msg_type == "event" else msg_type,
        content=decision.text if decision.action in ("answer", "handoff") else "",
    )
    status = {"answer": "received", "reply": "answered", "handoff": "handoff"}.get(
        decision.action, "ignored"
    )
    message_id = inbound.record(incoming, status=status)
    if message_id is not None and decision.action == "answer":
        inbound.enqueue_answer(message_id)
    outcome = decision.action if message_id is not None else "duplicate"
    CALLBACKS.labels(outcome="queued" if outcome == "answer" else outcome).inc()
    CALLBACK_SECONDS.observe(time.perf_counter() - started)

    # A retry of a passive reply gets the same reply again: the first one may have been lost.
    if decision.action == "reply":
        message = parse_message(xml)
        return _passive_reply(settings, TextReply(content=decision.text, message=message).render())
    if decision.action == "handoff":
        message = parse_message(xml)
        return _passive_reply(settings, TransferCustomerServiceReply(message=message).render())
    return Response("", mimetype="text/plain")


def _read_message(settings: Settings) -> tuple[dict[str, str], str]:
    body = request.get_data(cache=False)
    envelope = parse_xml(body)
    if request.args.get("encrypt_type", "raw").lower() != "aes":
        return envelope, body.decode("utf-8")
    if not settings.wechat_aes_key:
        raise CallbackRejected(400, "encrypted message but WECHAT_AES_KEY is not set")
    encrypt = envelope.get("Encrypt", "")
    args = request.args
    check_signature(
        settings.wechat_token,
        args.get("msg_signature", ""),
        args.get("timestamp", ""),
        args.get("nonce", ""),
        encrypt,
    )
    plain = decrypt(settings.wechat_aes_key, settings.wechat_app_id, encrypt)
    return parse_xml(plain.encode("utf-8")), plain


def _passive_reply(settings: Settings, xml: str) -> Response:
    if request.args.get("encrypt_type", "raw").lower() == "aes":
        crypto = WeChatCrypto(
            settings.wechat_token, settings.wechat_aes_key, settings.wechat_app_id
        )
        xml = crypto.encrypt_message(xml, request.args.get("nonce", ""))
    return Response(xml, mimetype="application/xml")
