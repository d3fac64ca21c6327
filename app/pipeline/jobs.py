"""Running a generation job where the model lives and streaming its events back.

Queue mode (production, `LLM_API_MODE=queue`, the default with a Redis broker): the web
process publishes a Celery task to the `llm` queue, whose workers hold one model each (the
same workers that answer WeChat), and reads the job's events from a Redis stream. The web
process never loads the model, and API and WeChat answers share one bounded pool of model
processes. In-process mode (the embedded quick start, which has no Redis): the web process
loads the model once and generates in a thread. `bench/chat_stream.py` measures both.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import redis

from app.errors import ServiceError
from app.settings import Settings

log = logging.getLogger(__name__)

#: How long a job may wait for a free model worker before the caller gets "busy".
QUEUE_WAIT_S = 60.0
#: Events of a finished job linger this long (a slow reader still gets them).
STREAM_TTL_S = 600
_KEY = "wxcs:llmjob:{}"
_CANCEL = "wxcs:llmjob:{}:cancel"


class JobError(ServiceError, RuntimeError):
    """The job could not run: `status` is the HTTP status the caller should answer."""

    def __init__(self, status: int, message: str) -> None:
        code = "model_unavailable" if status == 503 else "model_error"
        super().__init__(message, status=status, code=code)


_redis_clients: dict[str, redis.Redis] = {}


def _redis(settings: Settings) -> redis.Redis:
    client = _redis_clients.get(settings.celery_broker_url)
    if client is None:
        client = redis.Redis.from_url(settings.celery_broker_url, socket_timeout=30)
        _redis_clients[settings.celery_broker_url] = client
    return client


def stream(
    settings: Settings, kind: str, payload: dict[str, Any], wait_s: float = QUEUE_WAIT_S
) -> Iterator[dict[str, Any]]:
    """Events of one job: {"t": "reasoning"|"content", "v": text} ... then {"t": "done", ...}.

    Raises JobError when no model worker picks the job up within `wait_s`, or the job fails.
    Closing the iterator early cancels the job.
    """
    if settings.llm_via_queue:
        return _via_queue(settings, kind, payload, wait_s)
    return _in_process(settings, kind, payload)


def collect(settings: Settings, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Runs a job to the end: the `done` event, with the streamed text joined under
    "content" and "reasoning"."""
    texts: dict[str, list[str]] = {"content": [], "reasoning": []}
    for event in stream(settings, kind, payload):
        if event["t"] == "done":
            event["content"] = "".join(texts["content"])
            event["reasoning"] = "".join(texts["reasoning"])
            return event
        texts[event["t"]].append(event["v"])
    raise JobError(502, "the model worker ended the job without a result")


# --- queue mode ---------------------------------------------------------------------------


def _via_queue(
    settings: Settings, kind: str, payload: dict[str, Any], wait_s: float
) -> Iterator[dict[str, Any]]:
    from app.tasks import llm_api_job

    job_id = uuid.uuid4().hex
    client = _redis(settings)
    key = _KEY.format(job_id)
    try:
        llm_api_job.apply_async(args=[job_id, kind, payload], queue="llm", expires=wait_s)
    except Exception as exc:  # noqa: BLE001 - broker down: tell the caller, not a 500
        log.error("could not queue a %s job: %s", kind, exc)
        raise JobError(503, "the model queue is unavailable; retry later") from exc
    last_id = "0-0"
    started = False
    deadline = time.monotonic() + wait_s
    finished = False
    try:
        while True:
            if not started and time.monotonic() > deadline:
                raise JobError(
                    503,
                    f"no model worker was free within {wait_s:.0f} s; try again shortly "
                    "(add llm workers for more concurrency)",
                )
            reply = client.xread({key: last_id}, count=256, block=1000)
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    last_id = entry_id
                    started = True
                    event = json.loads(fields[b"e"])
                    if event["t"] == "error":
                        finished = True
                        raise JobError(event.get("status", 500), event["v"])
                    if event["t"] == "started":
                        continue
                    yield event
                    if event["t"] == "done":
                        finished = True
                        return
    finally:
        if not finished:
            client.set(_CANCEL.format(job_id), 1, ex=STREAM_TTL_S)


def run_queued_job(settings: Settings, job_id: str, kind: str, payload: dict[str, Any]) -> None:
    """Worker side of queue mode: runs the job, publishing each event to the job's stream."""
    from app.pipeline.generation import JOBS, Cancelled

    client = _redis(settings)
    key = _KEY.format(job_id)
    cancel_key = _CANCEL.format(job_id)
    count = 0

    def emit(event: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        if count % 16 == 0 and client.exists(cancel_key):
            raise Cancelled
        client.xadd(key, {"e": json.dumps(event, ensure_ascii=False)})
        if count == 1:
            client.expire(key, STREAM_TTL_S)

    try:
        emit({"t": "started"})
        JOBS[kind](settings, payload, emit)
    except Cancelled:
        log.info("llm job %s cancelled by its client", job_id)
    except Exception:
        log.exception("llm job %s failed", job_id)
        client.xadd(key, {"e": json.dumps(_failed(job_id))})
        client.expire(key, STREAM_TTL_S)


def _failed(job_id: str) -> dict[str, Any]:
    """The event of a job that raised: the caller is told which job, the log has why (the
    exception can quote file paths and the engine's internals)."""
    message = f"the model worker failed (job {job_id}; the worker's log has the error)"
    return {"t": "error", "status": 502, "v": message}


# --- in-process mode ----------------------------------------------------------------------


def _in_process(settings: Settings, kind: str, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    from app.pipeline.generation import JOBS, Cancelled

    events: queue.Queue[dict[str, Any]] = queue.Queue()
    cancelled = threading.Event()

    def emit(event: dict[str, Any]) -> None:
        if cancelled.is_set():
            raise Cancelled
        events.put(event)

    def run() -> None:
        try:
            JOBS[kind](settings, payload, emit)
        except Cancelled:
            pass
        except Exception:  # noqa: BLE001 - reported to the caller as an event
            job_id = uuid.uuid4().hex
            log.exception("in-process llm job %s failed", job_id)
            events.put(_failed(job_id))

    threading.Thread(target=run, name=f"llm-{kind}", daemon=True).start()
    try:
        while True:
            event = events.get()
            if event["t"] == "error":
                raise JobError(event.get("status", 500), event["v"])
            yield event
            if event["t"] == "done":
                return
    finally:
        cancelled.set()
