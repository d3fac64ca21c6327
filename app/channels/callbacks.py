"""What the encrypted-callback controllers (/wechat, /wecom) share: how refused input is
answered (a 4xx with a reason, never a 500), a signed message no customer can send
(acknowledged and dropped), and the store being down: the message is kept on local disk
and acknowledged (app/messages/spool.py); only when even that fails, a 503, so the
platform retries instead of the message being dropped."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client import Counter
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from app.channels.wechat.security import CallbackRejected, check_signature, decrypt
from app.extensions import db
from app.messages import intake, spool
from app.messages.intake import Unanswerable
from app.settings import Settings

log = logging.getLogger(__name__)


def install_error_handlers(bp: Blueprint, callbacks: Counter) -> None:
    """Answers CallbackRejected, oversized bodies and store outages, counting each outcome."""

    @bp.errorhandler(CallbackRejected)
    def _rejected(exc: CallbackRejected) -> tuple[Response, int]:
        callbacks.labels(outcome=f"rejected_{exc.status}").inc()
        return jsonify(error=exc.reason), exc.status

    @bp.errorhandler(Unanswerable)
    def _unanswerable(exc: Unanswerable) -> Response:
        # Signed, so acknowledged (a 4xx or 5xx would be retried and alarm the customer).
        log.warning("ignored a %s message that no customer can send: %s", bp.name, exc)
        callbacks.labels(outcome="ignored_unfit").inc()
        return Response("", mimetype="text/plain")

    @bp.errorhandler(RequestEntityTooLarge)
    def _too_large(_exc: RequestEntityTooLarge) -> tuple[Response, int]:
        callbacks.labels(outcome="rejected_413").inc()
        return jsonify(error="body too large"), 413

    @bp.errorhandler(SQLAlchemyError)
    def _store_down(exc: SQLAlchemyError) -> tuple[Response, int]:
        # Not acknowledged, so the platform retries; the message is not silently dropped.
        log.error("could not store a %s message: %s", bp.name, exc)
        callbacks.labels(outcome="store_unavailable").inc()
        return jsonify(error="message store unavailable, retry later"), 503


def open_signed(
    token: str, aes_key: str, receiver_id: str, ciphertext: str, *, receiver: str = "AppId"
) -> str:
    """Checks the request's msg_signature over `ciphertext` and returns its plaintext, which
    must name `receiver_id` (the Official Account's AppID, or WeCom's CorpID)."""
    args = request.args
    check_signature(
        token,
        args.get("msg_signature", ""),
        args.get("timestamp", ""),
        args.get("nonce", ""),
        ciphertext,
    )
    return decrypt(aes_key, receiver_id, ciphertext, receiver=receiver)


def keep_for_later(channel: str, fields: dict[str, str], delivery: str, exc: Exception) -> None:
    """The store is down: the verified message goes to the spool, to be taken in when the
    store is back (raises ``exc`` again when the spool cannot be written either)."""
    log.warning("store unavailable (%s); %s message kept in the spool", exc, channel)
    try:
        db.session.remove()
    except Exception:  # noqa: BLE001 - the connection is gone either way
        pass
    settings: Settings = current_app.extensions["settings"]
    try:
        spool.keep(spool.directory(settings.data_dir), channel, fields, delivery)
    except OSError as disk:
        log.error("could not spool a %s message either: %s", channel, disk)
        raise exc from disk
    drainer(current_app._get_current_object()).wake()  # type: ignore[attr-defined]


def drainer(app: Flask) -> spool.Drainer:
    """The web process's spool drainer, made on first use."""
    found = app.extensions.get("spool")
    if found is not None:
        return found
    settings: Settings = app.extensions["settings"]

    def take(record: dict[str, Any]) -> None:
        with app.app_context():
            try:
                intake.take_in(
                    record["channel"],
                    record["fields"],
                    settings,
                    delivery=record.get("delivery", "custom"),
                )
            finally:
                db.session.remove()

    made = spool.Drainer(spool.directory(settings.data_dir), take)
    return app.extensions.setdefault("spool", made)
