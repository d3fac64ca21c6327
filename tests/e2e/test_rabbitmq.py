"""The production path on RabbitMQ (CELERY_BROKER_URL=amqp://…) instead of Redis: gunicorn,
a threads Celery worker, PostgreSQL; a Dify app (the fake of tests/dify/fake_app_api.py)
taking 1.5 s per answer, so the load is the answering, not this machine's CPU; WeChat
played by the simulator. The module gets a RabbitMQ virtual host of its own, deleted
afterwards, so its queues never meet another test run's.

No beat runs here, so no sweeper: every answer below comes from a task that RabbitMQ
delivered (or delivered again), never from the database being swept. Proven: a burst is
answered exactly once each; a send that fails comes back as a Celery retry (a countdown
held by the worker, unacknowledged) and goes out once; the broker dropping every
connection (as a RabbitMQ restart does) while answers are written loses none and sends
none twice, and the web's next publish reconnects; a worker SIGKILLed mid-answer leaves
its unacknowledged tasks with RabbitMQ, which hands them to the next worker.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from app import layout
from app.simulator.callback_client import CallbackClient
from app.simulator.state import WeChatAPISimulator
from tests.chaos.traffic import WECHAT_ACK_LIMIT_S, Traffic
from tests.dify.fake_app_api import FakeDifyApp
from tests.dify.stack import dify_backed_stack
from tests.support import WECHAT, Processes, wait_until, worker_args

pytestmark = pytest.mark.slow

#: The server, without a virtual host (TEST_RABBITMQ_URL overrides it).
RABBITMQ = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672").rstrip("/")
APP_ID = "wx7a3b9c1d2e4f5a6b"
KEY = "app-rabbit-3c9e"
NAME = "rabbit"
CONCURRENCY = 4
SEND = "/cgi-bin/message/custom/send"


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"rabbitmqctl {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def vhost() -> Iterator[str]:
    """A fresh RabbitMQ virtual host for this module (its queues, exchanges, connections)."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip(
            "RabbitMQ is not installed (apt-get install rabbitmq-server; "
            "tests/ensure_services.sh starts it)"
        )
    name = f"wxcs_test_{uuid.uuid4().hex[:10]}"
    user = RABBITMQ.split("//", 1)[1].split(":", 1)[0]
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
        yield name
    finally:
        rabbitmqctl("delete_vhost", name)


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    vhost: str
    db: sa.Engine
    sim: WeChatAPISimulator
    dify: FakeDifyApp
    processes: Processes

    def client(self) -> CallbackClient:
        return CallbackClient(self.url + "/wechat", WECHAT["token"], APP_ID)

    def scalar(self, sql: str) -> object:
        with self.db.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()

    def rows(self, customers: list[str]) -> list[tuple[str, int]]:
        """(status, attempts) of these customers' messages."""
        listed = ",".join(f"'{c}'" for c in customers)
        with self.db.connect() as conn:
            return [
                (r[0], r[1])
                for r in conn.execute(
                    sa.text(
                        "SELECT status, attempts FROM inbound_messages "
                        f"WHERE customer IN ({listed}) ORDER BY id"
                    )
                )
            ]

    def sent_to(self, openid: str) -> list[dict]:
        return [m for m in self.sim.sent if m.get("touser") == openid]

    def llm_queue(self) -> tuple[int, int]:
        """(ready, unacknowledged) messages of the llm queue, as RabbitMQ counts them."""
        out = rabbitmqctl(
            "list_queues",
            "-p",
            self.vhost,
            "--no-table-headers",
            "--quiet",
            "name",
            "messages_ready",
            "messages_unacknowledged",
        )
        for line in out.splitlines():
            name, ready, unacked = line.split()
            if name == layout.LLM_QUEUE:
                return int(ready), int(unacked)
        raise AssertionError(f"no {layout.LLM_QUEUE} queue in {self.vhost}: {out!r}")

    def drop_connections(self) -> int:
        """Closes every connection to this module's virtual host, as a broker restart
        does (the web's publishers and the worker's consumer alike)."""
        out = rabbitmqctl("list_connections", "--no-table-headers", "--quiet", "pid", "vhost")
        pids = [line.split()[0] for line in out.splitlines() if line.split()[1:] == [self.vhost]]
        for pid in pids:
            rabbitmqctl("close_connection", pid, "test: the broker restarts")
        return len(pids)

    def worker_log(self) -> str:
        return self.processes.log(f"{NAME}-worker")

    def all_answered_once(self, customers: list[str]) -> bool:
        """Every customer has one reply and every message is marked answered."""
        if not all(self.sent_to(c) for c in customers):
            return False
        return all(status == "answered" for status, _ in self.rows(customers))


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    processes: Processes,
    milvus_uri: str,
    vhost: str,
) -> Iterator[Stack]:
    with dify_backed_stack(
        NAME,
        tmp_path_factory.mktemp("rabbit"),
        processes,
        milvus_uri,
        app_id=APP_ID,
        dify=FakeDifyApp(KEY, latency_s=1.5),
        concurrency=CONCURRENCY,
        pool="threads",
        broker=f"{RABBITMQ}/{vhost}",
        DIFY_APP_TIMEOUT_S="20",
        # One try per task run: a failed send is a Celery retry (1 s, then 2 s).
        WECHAT_SEND_RETRIES="0",
        ANSWER_RETRY_BACKOFF_S="1",
        RATE_LIMIT_MESSAGES="0",
    ) as st:
        engine = sa.create_engine(st.database_url)
        try:
            yield Stack(st.url, st.env, vhost, engine, st.sim, st.dify, processes)
        finally:
            engine.dispose()


def _customers(n: int) -> list[str]:
    return [f"o_rmq_{uuid.uuid4().hex[:10]}" for _ in range(n)]


def test_a_burst_is_answered_exactly_once_each(stack: Stack) -> None:
    traffic = Traffic(stack.client(), 24, every_s=0)
    traffic.start()
    traffic.join(120)
    wait_until(lambda: stack.all_answered_once(traffic.customers), 180, "every answer")
    assert traffic.report(stack.sim) == (24, 0, 0)
    assert traffic.statuses == [200] * 24
    assert max(traffic.acks) < WECHAT_ACK_LIMIT_S
    assert [a for _, a in stack.rows(traffic.customers)] == [1] * 24
    assert stack.llm_queue() == (0, 0)  # every task acknowledged


def test_a_failing_send_comes_back_as_a_celery_retry_and_goes_out_once(stack: Stack) -> None:
    stack.sim.inject(SEND, -1, times=2)  # "system busy" twice
    [openid] = _customers(1)
    assert stack.client().post(stack.client().text(openid, "退货运费谁出？")).status_code == 200
    wait_until(lambda: stack.all_answered_once([openid]), 90, "the answer")
    assert stack.rows([openid]) == [("answered", 3)]  # two retries, then delivered
    assert len(stack.sent_to(openid)) == 1
    log = stack.worker_log()
    assert "retry in 1s" in log and "retry in 2s" in log


def test_the_broker_dropping_every_connection_mid_answer_loses_nothing_and_sends_once(
    stack: Stack,
) -> None:
    client = stack.client()
    logged = len(stack.worker_log())  # this test's part of the log starts here
    first = _customers(CONCURRENCY)
    stack.dify.latency_s = 10.0  # still answering when the connections drop (rabbitmqctl is slow)
    try:
        for openid in first:
            assert client.post(client.text(openid, "发票怎么开？")).status_code == 200
        wait_until(
            lambda: {f"wechat:{o}" for o in first} <= {r["user"] for r in stack.dify.requests},
            60,
            "every answer being written",
        )
        assert stack.drop_connections() >= 2  # the web's publisher and the worker at least
        assert not any(stack.sent_to(o) for o in first)  # dropped mid-answer
    finally:
        stack.dify.latency_s = 1.5
    # The web's pooled connection is gone: this publish must notice and reconnect.
    later = _customers(2)
    for openid in later:
        assert client.post(client.text(openid, "你们周末营业吗？")).status_code == 200

    everyone = first + later
    wait_until(lambda: stack.all_answered_once(everyone), 120, "every answer")
    # The interrupted answers went on and were sent; their acknowledgements died with the
    # channel, so RabbitMQ delivered those tasks again, and the second runs found the
    # message answered (the claims): each task id received twice, each answer sent once.
    wait_until(lambda: stack.llm_queue() == (0, 0), 60, "every task acknowledged")
    assert all(len(stack.sent_to(o)) == 1 for o in everyone)
    log = stack.worker_log()[logged:]
    assert "Connection to broker lost" in log
    received = re.findall(r"Task app\.tasks\.answer_message\[([0-9a-f-]+)\] received", log)
    assert sum(received.count(t) >= 2 for t in set(received)) == CONCURRENCY
    # Stuck after the reconnect on the threads pool before app/extensions.py turned off
    # Celery's prefetch reduction for RabbitMQ (its basic.qos ran in the task's thread).
    assert "UnexpectedFrame" not in log


def test_a_worker_killed_mid_answer_leaves_its_tasks_with_rabbitmq(stack: Stack) -> None:
    client = stack.client()
    customers = _customers(2 * CONCURRENCY)
    for openid in customers:
        assert client.post(client.text(openid, "几点发货？")).status_code == 200
    wait_until(
        lambda: stack.scalar("SELECT count(*) FROM inbound_messages WHERE status='processing'"),
        60,
        "answers being written",
    )
    stack.processes.stop(f"{NAME}-worker", sig=signal.SIGKILL)

    # The connection died with the worker: RabbitMQ takes back every task it held,
    # acknowledged late, so they wait in the queue (no worker runs now).
    unanswered = wait_until(
        lambda: (
            stack.llm_queue()[1] == 0 and [s for s, _ in stack.rows(customers) if s != "answered"]
        ),
        60,
        "the dead worker's tasks back in the queue",
    )
    ready, _ = stack.llm_queue()
    assert ready >= len(unanswered) > 0

    stack.processes.start(f"{NAME}-worker", worker_args(NAME, CONCURRENCY, "threads"), stack.env)
    wait_until(lambda: stack.all_answered_once(customers), 120, "every answer")
    assert all(len(stack.sent_to(o)) == 1 for o in customers)
    assert any(attempts > 1 for _, attempts in stack.rows(customers))  # taken over
    wait_until(lambda: stack.llm_queue() == (0, 0), 60, "every task acknowledged")
