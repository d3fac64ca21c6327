"""Prometheus metrics at /metrics.

With PROMETHEUS_MULTIPROC_DIR set (the `serve` command sets it), web workers and
Celery workers write to one directory and /metrics shows the sum of all processes. Each
process's files are named by host and process id, not the process id alone: containers
sharing the directory through a volume all have a process 1, whose files would collide.
"""

from __future__ import annotations

import os
import socket

from flask import Flask, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)


def _process_identifier() -> str:
    # prometheus_client splits file names on "_": none in the identifier.
    return f"{socket.gethostname().replace('_', '-')}-{os.getpid()}"


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    values.ValueClass = values.MultiProcessValue(process_identifier=_process_identifier)

CALLBACKS = Counter("wechat_callbacks_total", "WeChat callback requests by outcome", ["outcome"])
CALLBACK_SECONDS = Histogram(
    "wechat_callback_seconds",
    "Time to acknowledge a WeChat callback",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
WECOM_CALLBACKS = Counter(
    "wecom_callbacks_total", "WeCom callback requests by outcome", ["outcome"]
)
WECOM_CALLBACK_SECONDS = Histogram(
    "wecom_callback_seconds",
    "Time to acknowledge a WeCom callback",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ANSWERS = Counter("answers_total", "Customer messages answered, by outcome", ["outcome"])
#: What each answer was: faq (an entry's stored answer: found by characters or meaning,
#: in the web process or a worker, or after the judge), generated, refused (with the
#: check that refused it), handed_off, failed.
ANSWER_OUTCOMES = Counter(
    "answer_outcomes_total",
    "Answers to customers by outcome and how it came about",
    ["outcome", "via"],
)
ANSWER_SECONDS = Histogram(
    "answer_generation_seconds",
    "Retrieval plus generation time per answer",
    buckets=(0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120),
)


def init_app(app: Flask) -> None:
    @app.get("/metrics")
    def metrics() -> Response:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            data = generate_latest(registry)
        else:
            data = generate_latest()
        return Response(data, mimetype=CONTENT_TYPE_LATEST)
