"""Celery tasks: thin wrappers that carry ids and are safe to run twice."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from flask import current_app

from app import resources
from app.channels import api_for
from app.conversations import vectors
from app.knowledge import indexing
from app.messages import answering, inbound, sweeper

log = logging.getLogger(__name__)


def _settings():  # noqa: ANN202
    return current_app.extensions["settings"]


# max_retries is only a backstop: ANSWER_MAX_ATTEMPTS (counted on the message, across
# Celery retries and sweeps) ends a message that keeps failing, as `failed`.
@shared_task(bind=True, max_retries=50, acks_late=True, reject_on_worker_lost=True)
def answer_message(self, message_id: int) -> str:  # noqa: ANN001
    settings = _settings()
    try:
        done = answering.answer_message(
            message_id,
            settings,
            resources.customer_answerer(settings),
            api_for(inbound.channel_of(message_id), settings),
            ocr=lambda: resources.ocr_engine(settings),
            speech=lambda: resources.speech_engine(settings),
        )
    except Exception as exc:
        # WeChat or a dependency is down for a while: back off, the message stays stored.
        countdown = min(settings.answer_retry_backoff_s * 2**self.request.retries, 300)
        log.warning("answer for message %s failed (%r); retry in %gs", message_id, exc, countdown)
        raise self.retry(exc=exc, countdown=countdown) from exc
    if done == "later":
        # The customer's earlier question is being answered: this one comes after it.
        raise self.retry(countdown=min(1 + self.request.retries, 15))
    if settings.answer_backend == "pipeline" and done != "skipped":
        # A question left unanswered keeps the vector its search just made, for the
        # staff's grouping (app/conversations/vectors.py); never fails the answer.
        vectors.remember_answer(message_id, lambda: resources.knowledge_store(settings).embedder)
    return done


@shared_task
def sweep_unanswered() -> int:
    """Re-queues messages that were accepted but never finished (lost enqueue, dead worker);
    fails, with the reason logged, those that used up ANSWER_MAX_ATTEMPTS."""
    settings = _settings()
    ids = sweeper.sweep(
        settings, inbound.enqueue_answer, api=lambda msg: api_for(msg.channel, settings)
    )
    if ids:
        log.info("re-queued %d unanswered messages", len(ids))
    return len(ids)


@shared_task
def notify_waiting() -> int:
    """Tells customers whose question waits in a backlog that the answer is coming."""
    from app.messages.waiting import notify_waiting as notify

    settings = _settings()
    sent = notify(settings, lambda msg: api_for(msg.channel, settings))
    if sent:
        log.info("told %d waiting customers their answer is coming", sent)
    return sent


@shared_task(acks_late=True, reject_on_worker_lost=True)
def index_document(version_id: int) -> str:
    """Parse, chunk and index one uploaded version; progress is on its document row."""
    settings = _settings()
    return indexing.index_version(
        version_id, resources.knowledge_store(settings), settings
    )


@shared_task
def sweep_knowledge() -> int:
    """Re-queues uploads whose indexing task was lost (see indexing.requeue_stalled)."""
    ids = indexing.requeue_stalled(_settings(), index_document.delay)
    if ids:
        log.warning("re-queued indexing of %d stalled document versions: %s", len(ids), ids)
    return len(ids)


@shared_task
def reindex_knowledge(full: bool = False, trigger: str = "beat", actor: str = "beat") -> str:
    """Blue/green rebuild (nightly by KB_REINDEX_CRON, or queued from the API)."""
    from app.knowledge.reindex import ReindexBusy, reindex

    settings = _settings()
    try:
        run = reindex(
            resources.knowledge_store(settings), settings, full=full, trigger=trigger, actor=actor
        )
    except ReindexBusy as exc:
        log.info("reindex skipped: %s", exc)
        return "busy"
    return run.status


@shared_task(acks_late=False, ignore_result=True)
def llm_api_job(job_id: str, kind: str, payload: dict) -> None:
    """A generation for the HTTP API (/v1, the answer tool); events go back through Redis.
    Not acknowledged late: a stream nobody is reading any more must not run twice."""
    from app.pipeline.jobs import run_queued_job

    run_queued_job(_settings(), job_id, kind, payload)



@shared_task(bind=True, max_retries=30, acks_late=True, reject_on_worker_lost=True)
def sync_kf(self, open_kfid: str, token: str = "", queued_at: float | None = None) -> int:  # noqa: ANN001
    """Reads a 微信客服 account's new messages and takes each in (app/channels/kf/intake.py):
    queued by its callback with the callback's token, by beat without one. On the default
    queue, not the model's: enter_session's welcome_code lasts 20 s. Retried as
    ``intake.retry_after`` says (the stored cursor makes a retry resume)."""
    from app.channels.kf import intake as kf_intake

    settings = _settings()
    queued_at = queued_at or time.time()
    try:
        return kf_intake.sync(settings, open_kfid, token)
    except Exception as exc:
        again = kf_intake.retry_after(
            exc, open_kfid, token, queued_at=queued_at, retries=self.request.retries,
            backoff_s=settings.answer_retry_backoff_s,
        )  # fmt: skip
        if again is None:
            return 0
        raise self.retry(
            args=(open_kfid, again.token),
            kwargs={"queued_at": queued_at},
            exc=exc,
            countdown=again.countdown,
        ) from exc


@shared_task
def sync_kf_accounts() -> int:
    """Safety net (beat): every 微信客服 account read so far read again without a token, so
    messages whose callback was lost are answered all the same."""
    from app.channels.kf.intake import known_accounts

    accounts = known_accounts(_settings())
    for open_kfid in accounts:
        sync_kf.delay(open_kfid, "")
    return len(accounts)
