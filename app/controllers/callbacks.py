"""What the encrypted-callback controllers (/wechat, /wecom) share: how refused input is
answered (a 4xx with a reason, never a 500), a signed message no customer can send
(acknowledged and dropped), and the store being down (503, so the platform retries
instead of the message being dropped)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify
from prometheus_client import Counter
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from app.channels.wechat.security import CallbackRejected
from app.services.intake import Unanswerable

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
