"""Prometheus metrics at /metrics.

With PROMETHEUS_MULTIPROC_DIR set (the `serve` command sets it), web workers and
Celery workers write to one directory and /metrics shows the sum of all processes. Each
process's files are named by host and process id, not the process id alone: containers
sharing the directory through a volume all have a process 1, whose files would collide.

The counters above count what happened since each process started. What staff read on
/admin/overview (the last 7 and 30 days, from the database) is exported as gauges too,
computed at scrape time by ``RecentOutcomes``: a collector on the registry /metrics
builds (so it works in multiprocess mode, where the registry holds no live metric), with
its figures kept 30 s so scrapes do not query the database each time; while the database
cannot be read those gauges are left out and the rest of /metrics is served as ever.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

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
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from app.conversations import overview

log = logging.getLogger(__name__)


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


#: How long the database figures of ``RecentOutcomes`` are served before being read again.
RECENT_TTL_S = 30.0


class RecentOutcomes:
    """The overview's totals of the last 7 and 30 days (app/conversations/overview.py) as
    gauges, read from the database at most once per ``ttl_s`` per process. A failed read
    is remembered as "no gauges" for ``ttl_s`` too: a database that is down costs a scrape
    one connection timeout every ``ttl_s``, not each time."""

    def __init__(
        self,
        app: Flask,
        ttl_s: float = RECENT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app, self.ttl_s, self.clock = app, ttl_s, clock
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._families: list[Metric] = []

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = self.clock()
            if self._read_at is None or now - self._read_at >= self.ttl_s:
                self._families = self._read()
                self._read_at = now
            families = list(self._families)
        yield from families

    def _read(self) -> list[Metric]:
        try:
            with self.app.app_context():
                tz = self.app.extensions["settings"].business_timezone
                totals = {
                    days: overview.summary(days, tz=tz)["totals"] for days in overview.PERIODS
                }
        except Exception as exc:  # /metrics must not fail with the database
            first_line = (str(exc).splitlines() or [""])[0][:200]
            log.warning(
                "metrics: recent outcome gauges left out: %s: %s", type(exc).__name__, first_line
            )
            return []
        messages = GaugeMetricFamily(
            "customer_messages_recent",
            "Customer messages logged in the last N days (BUSINESS_TIMEZONE days, today so far)",
            labels=["days"],
        )
        outcomes = GaugeMetricFamily(
            "answer_outcomes_recent",
            "Customer messages of the last N days by the outcome of their answer",
            labels=["days", "outcome"],
        )
        p95 = GaugeMetricFamily(
            "reply_seconds_p95_recent",
            "95th percentile of message received to first reply sent, last N days",
            labels=["days"],
        )
        for days, figures in totals.items():
            messages.add_metric([str(days)], figures["messages"])
            for outcome, n in figures["outcomes"].items():
                outcomes.add_metric([str(days), outcome], n)
            if figures["p95_reply_ms"] is not None:
                p95.add_metric([str(days)], figures["p95_reply_ms"] / 1000)
        return [messages, outcomes, p95]


def init_app(app: Flask) -> None:
    recent = RecentOutcomes(app)
    app.extensions["metrics.recent"] = recent

    @app.get("/metrics")
    def metrics() -> Response:
        ours = CollectorRegistry()
        ours.register(recent)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.MultiProcessCollector(ours)
            data = generate_latest(ours)
        else:
            data = generate_latest() + generate_latest(ours)
        return Response(data, mimetype=CONTENT_TYPE_LATEST)
