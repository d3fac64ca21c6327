"""A burst of questions while the answering worker is killed: every question answered once.

The production path (gunicorn, a threads Celery worker and beat on Redis, PostgreSQL), a
Dify app (the fake of tests/dify/fake_app_api.py) taking 1.5 s per answer so the burst
is bound by answering, not by this machine's CPU; WeChat played by the simulator. The
worker is killed (SIGKILL, as the kernel's OOM killer or a lost machine would) twice
while it answers, and started again. A killed worker's claims stop being renewed: the
sweeper re-queues those messages once the lease lapses (ANSWER_CLAIM_LEASE_S), and the
next task takes them over; replies stored before a kill are sent, not regenerated.

This is the reduced form that runs with the tests; bench/chaos.py runs the full one
(100 questions, five kills, the real model) and reports to bench/RESULTS.md.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from app.simulator.callback_client import CallbackClient
from app.simulator.state import WeChatAPISimulator
from tests.chaos.traffic import WECHAT_ACK_LIMIT_S, Traffic
from tests.dify.fake_app_api import FakeDifyApp
from tests.dify.stack import dify_backed_stack
from tests.support import (
    BIN,
    WECHAT,
    Processes,
    wait_until,
    worker_args,
)

pytestmark = pytest.mark.slow

APP_ID = "wxc4a05b1e2d3f4a5b"
KEY = "app-chaos-7e1f"
NAME = "chaos"
CONCURRENCY = 4
QUESTIONS = 24
KILLS = 2


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    db: sa.Engine
    sim: WeChatAPISimulator
    dify: FakeDifyApp
    processes: Processes

    def client(self) -> CallbackClient:
        return CallbackClient(self.url + "/wechat", WECHAT["token"], APP_ID)

    def scalar(self, sql: str) -> object:
        with self.db.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()

    def kill_and_restart_worker(self) -> None:
        self.processes.stop(f"{NAME}-worker", sig=signal.SIGKILL)
        self.processes.start(f"{NAME}-worker", worker_args(NAME, CONCURRENCY, "threads"), self.env)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, processes: Processes, milvus_uri: str
) -> Iterator[Stack]:
    with dify_backed_stack(
        NAME,
        tmp_path_factory.mktemp("chaos"),
        processes,
        milvus_uri,
        app_id=APP_ID,
        dify=FakeDifyApp(KEY, latency_s=1.5),
        concurrency=CONCURRENCY,
        pool="threads",
        DIFY_APP_TIMEOUT_S="20",
        ANSWER_RETRY_BACKOFF_S="1",
        ANSWER_CLAIM_LEASE_S="6",
        ANSWER_SWEEP_EVERY_S="2",
        STALE_MESSAGE_AFTER_S="10",
        RATE_LIMIT_MESSAGES="0",
    ) as st:
        processes.start(
            f"{NAME}-beat",
            [str(BIN / "celery"), "-A", "app.worker", "beat", "--loglevel", "INFO"],
            st.env,
        )
        engine = sa.create_engine(st.database_url)
        try:
            yield Stack(st.url, st.env, engine, st.sim, st.dify, processes)
        finally:
            engine.dispose()
            processes.stop(f"{NAME}-beat")


def test_a_burst_with_the_worker_killed_twice_is_answered_exactly_once(stack: Stack) -> None:
    traffic = Traffic(stack.client(), QUESTIONS, every_s=0)
    traffic.start()
    for _ in range(KILLS):
        # Kill while answers are being written: some message is claimed right now.
        wait_until(
            lambda: stack.scalar("SELECT count(*) FROM inbound_messages WHERE status='processing'"),
            60,
            "an answer in progress",
        )
        stack.kill_and_restart_worker()
    traffic.join(120)

    wait_until(lambda: traffic.answered(stack.sim) == QUESTIONS, 240, "every customer answered")
    assert traffic.report(stack.sim) == (QUESTIONS, 0, 0)
    assert traffic.statuses == [200] * QUESTIONS
    assert max(traffic.acks) < WECHAT_ACK_LIMIT_S
    # The kills interrupted answers (else this test proves nothing): their messages
    # were taken over after the lease lapsed.
    resumed = stack.scalar("SELECT count(*) FROM inbound_messages WHERE attempts > 1")
    assert resumed and int(resumed) >= 1  # type: ignore[arg-type]
    # A worker killed between sending and marking the message answered leaves it claimed;
    # the next task after the lease finds every reply sent and only marks it.
    not_answered = (
        "SELECT string_agg(id || ':' || status || ':' || attempts, ', ') "
        "FROM inbound_messages WHERE status <> 'answered'"
    )
    try:
        wait_until(lambda: stack.scalar(not_answered) is None, 60, "every message marked answered")
    except TimeoutError as exc:
        left = stack.scalar(not_answered)
        raise AssertionError(f"{exc}; not answered (id:status:attempts): {left}") from exc
    assert len(stack.sim.sent) == QUESTIONS  # and nothing was sent twice meanwhile
