"""Celery tasks: thin wrappers that carry ids and are safe to run twice."""

from __future__ import annotations

import logging

from celery import shared_task
from flask import current_app

from app import resources
from app.channels.wechat.api import OfficialAccountAPI
from app.services import answering, inbound

log = logging.getLogger(__name__)


def _settings():  # noqa: ANN202
    return current_app.extensions["settings"]


@shared_task(bind=True, max_retries=8, acks_late=True, reject_on_worker_lost=True)
def answer_message(self, message_id: int) -> str:  # noqa: ANN001
    settings = _settings()
    try:
        return answering.answer_message(
            message_id, settings, resources.answer_pipeline(settings), OfficialAccountAPI(settings)
        )
    except Exception as exc:
        # WeChat or a dependency is down for a while: back off, the message stays stored.
        countdown = min(5 * 2**self.request.retries, 300)
        log.warning("answer for message %s failed (%r); retry in %ss", message_id, exc, countdown)
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task
def sweep_unanswered() -> int:
    """Re-queues messages that were accepted but never finished (lost enqueue, dead worker)."""
    ids = answering.stale_message_ids(_settings())
    for message_id in ids:
        inbound.enqueue_answer(message_id)
    if ids:
        log.info("re-queued %d unanswered messages", len(ids))
    return len(ids)
