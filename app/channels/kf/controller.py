"""The 微信客服 callback at /kf (WeCom admin: 微信客服 → API → 接收事件服务器).

WeCom's encryption (app/channels/wecom/controller.py): ``msg_signature`` over token,
timestamp, nonce and ciphertext, the plaintext naming our CorpID as receiveid; the URL
check (GET) sends an encrypted ``echostr`` whose plaintext must come back. A POST only
notifies: ``kf_msg_or_event`` with a ``Token`` (for sync_msg, valid 10 minutes) and the
``OpenKfId`` that has news. The reply is an empty 200 at once; the reading is queued
(``app.extensions[ENQUEUE]``, a callable(open_kfid, token) that
app/controllers/__init__.py sets: intake.enqueue_sync, the Celery task ``sync_kf``
running app/channels/kf/sync.py). A notification that cannot be queued gets 503, so
WeCom tries again; and each sync reads from the stored cursor, so a lost notification
only delays messages until the next one (or beat's token-less round).
"""

from __future__ import annotations

import logging
import re
import time

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import Counter, Histogram

from app import metrics  # noqa: F401 - multiprocess metric values before this module's
from app.channels.callbacks import install_error_handlers, open_signed
from app.channels.wechat.security import CallbackRejected, check_timestamp, decode_xml, parse_xml
from app.settings import Settings

log = logging.getLogger(__name__)

bp = Blueprint("kf", __name__)

URL = "/kf"
#: app.extensions key: callable(open_kfid, token) that queues the account's sync.
ENQUEUE = "kf_enqueue_sync"
#: What an open_kfid is made of (WeChat's are "wk" and ~30 letters, digits, "_" or "-").
OPEN_KFID = re.compile(r"[A-Za-z0-9_\-]{1,64}")
#: sync_msg's token: at most 128 bytes.
TOKEN_MAX = 128

KF_CALLBACKS = Counter("kf_callbacks_total", "微信客服 callback requests by outcome", ["outcome"])
KF_CALLBACK_SECONDS = Histogram(
    "kf_callback_seconds",
    "Time to acknowledge a 微信客服 callback",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

install_error_handlers(bp, KF_CALLBACKS)


def _settings() -> Settings:
    return current_app.extensions["settings"]


def _check_signed(settings: Settings, ciphertext: str) -> str:
    """Checks msg_signature over `ciphertext` and returns its plaintext (for our CorpID)."""
    return open_signed(
        settings.kf_token,
        settings.kf_encoding_aes_key,
        settings.kf_corp_id,
        ciphertext,
        receiver="CorpID",
    )


@bp.before_request
def _guard() -> tuple[Response, int] | None:
    settings = _settings()
    if not settings.kf_configured:
        return jsonify(error="微信客服 is not configured (KF_TOKEN is empty)"), 503
    request.max_content_length = settings.wechat_max_body_bytes
    check_timestamp(request.args.get("timestamp", ""), settings.wechat_timestamp_window_s)
    return None


@bp.get(URL)
def verify_url() -> Response:
    """The URL check: the decrypted ``echostr``, once its signature matched."""
    plain = _check_signed(_settings(), request.args.get("echostr", ""))
    KF_CALLBACKS.labels(outcome="verified").inc()
    return Response(plain, mimetype="text/plain")


@bp.post(URL)
def receive() -> Response | tuple[Response, int]:
    started = time.perf_counter()
    settings = _settings()
    envelope = parse_xml(decode_xml(request.get_data(cache=False)))
    fields = parse_xml(_check_signed(settings, envelope.get("Encrypt", "")))
    if not is_notification(fields):
        # Signed, so acknowledged (a 4xx would be retried); nothing else is ours to read.
        log.info("kf: ignored a callback of type %r", fields.get("Event") or fields.get("MsgType"))
        return _done("ignored", started)
    if not queue_sync(fields):
        KF_CALLBACKS.labels(outcome="queue_unavailable").inc()
        return jsonify(error="could not queue the sync, retry later"), 503
    return _done("queued", started)


def is_notification(fields: dict[str, str]) -> bool:
    """A decrypted callback that is 微信客服's ``kf_msg_or_event``."""
    return fields.get("MsgType", "").lower() == "event" and fields.get("Event") == "kf_msg_or_event"


def queue_sync(fields: dict[str, str]) -> bool:
    """Queues the sync a ``kf_msg_or_event`` notification asks for (``ENQUEUE``); False when
    it could not be queued (the caller answers 503: WeCom retries). Also the WeCom app's
    callback's (/wecom), where the kf API is called through that app.
    Raises CallbackRejected (400) for a notification WeChat would not send."""
    token, open_kfid = fields.get("Token", ""), fields.get("OpenKfId", "")
    if not token or not open_kfid:
        raise CallbackRejected(400, "kf_msg_or_event without Token or OpenKfId")
    if not OPEN_KFID.fullmatch(open_kfid) or len(token.encode("utf-8")) > TOKEN_MAX:
        raise CallbackRejected(400, "OpenKfId or Token is not what WeChat sends")
    try:
        enqueue = current_app.extensions[ENQUEUE]
        enqueue(open_kfid, token)
    except Exception as exc:  # noqa: BLE001 - broker down, or not wired: WeCom retries
        log.error("kf: could not queue the sync of %s: %s", open_kfid, exc)
        return False
    return True


def _done(outcome: str, started: float) -> Response:
    KF_CALLBACKS.labels(outcome=outcome).inc()
    KF_CALLBACK_SECONDS.observe(time.perf_counter() - started)
    return Response("", mimetype="text/plain")
