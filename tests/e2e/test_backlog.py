"""A worker under a backlog, on the production path (gunicorn, a threads Celery worker on
Redis, PostgreSQL), with a Dify app (the fake of tests/dify/fake_app_api.py) taking
seconds per answer, as a model does; WeChat played by the simulator.

- Answers in progress hold no database connection: each used to keep a transaction open
  for the whole generation, and its typing indicator a second one; at the README's
  concurrency the pool ran dry and answers failed (issue 21).
- A question waiting behind the backlog is told once that its answer is coming.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from celery import Celery

from app.settings import Settings
from app.simulator.callback_client import CallbackClient
from app.simulator.state import WeChatAPISimulator
from tests.dify.fake_app_api import FakeDifyApp
from tests.dify.stack import dify_backed_stack
from tests.support import WECHAT, Processes, wait_until

pytestmark = pytest.mark.slow

APP_ID = "wx5c0a7e2b91d3f4a8"
KEY = "app-e2e-conn-4d2f"
CONCURRENCY = 4
NOTICE_AFTER_S = 8
NOTICE = Settings.model_fields["answer_wait_notice_text"].default


@dataclass
class Stack:
    url: str
    database_url: str
    broker: str
    sim: WeChatAPISimulator
    dify: FakeDifyApp

    def client(self) -> CallbackClient:
        return CallbackClient(self.url + "/wechat", WECHAT["token"], APP_ID)

    def sent_to(self, openid: str) -> list[dict]:
        return [m for m in self.sim.sent if m.get("touser") == openid]

    def sql(self, query: str) -> list[tuple]:
        url = self.database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url) as conn:
            return conn.execute(query).fetchall()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, processes: Processes, milvus_uri: str
) -> Iterator[Stack]:
    with dify_backed_stack(
        "conn",
        tmp_path_factory.mktemp("conn"),
        processes,
        milvus_uri,
        app_id=APP_ID,
        dify=FakeDifyApp(KEY, latency_s=4.0),
        concurrency=CONCURRENCY,
        pool="threads",
        WECHAT_TYPING="true",
        DIFY_APP_TIMEOUT_S="20",
        # Three per answer at most (app/store/pool.py): exactly what the worker needs.
        DB_POOL_SIZE=str(3 * CONCURRENCY),
        DB_MAX_OVERFLOW="0",
        DB_POOL_TIMEOUT_S="3",
        ANSWER_WAIT_NOTICE_AFTER_S=str(NOTICE_AFTER_S),
    ) as st:
        yield Stack(st.url, st.database_url, st.env["CELERY_BROKER_URL"], st.sim, st.dify)


def test_answers_being_written_hold_no_database_connection_and_all_go_out_once(
    stack: Stack,
) -> None:
    client = stack.client()
    customers = [f"o_{uuid.uuid4().hex[:12]}" for _ in range(CONCURRENCY)]
    for openid in customers:
        assert client.post(client.text(openid, "退货运费谁出？")).status_code == 200

    # All four are with the Dify app now (it takes 4 s each)...
    wait_until(
        lambda: len({r["user"] for r in stack.dify.requests}) == CONCURRENCY,
        60,
        "every question at the Dify app",
    )
    # ...and no worker connection sits in an open transaction meanwhile.
    waiting = stack.sql(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
    )[0][0]
    assert waiting == 0

    for openid in customers:
        wait_until(lambda o=openid: stack.sent_to(o), 60, "the answer at WeChat")
    assert all(len(stack.sent_to(o)) == 1 for o in customers)
    # Answered on the first attempt: none waited for a connection and failed. The row is
    # marked answered just after the send returns, so a read right after the message
    # reached WeChat can still see "processing": poll.
    query = "SELECT attempts, status FROM inbound_messages WHERE customer IN ({})".format(
        ",".join(f"'{o}'" for o in customers)
    )
    wait_until(
        lambda: all(status == "answered" for _, status in stack.sql(query)),
        30,
        "every message marked answered",
    )
    assert sorted(stack.sql(query)) == [(1, "answered")] * CONCURRENCY


def test_a_question_waiting_behind_the_backlog_is_told_once_its_answer_is_coming(
    stack: Stack,
) -> None:
    stack.dify.latency_s = 20.0  # every worker thread busy for a while
    celery = Celery(broker=stack.broker)
    try:
        client = stack.client()
        busy = [f"o_{uuid.uuid4().hex[:12]}" for _ in range(CONCURRENCY)]
        for openid in busy:
            client.post(client.text(openid, "发票怎么开？"))
        wait_until(
            lambda: {f"wechat:{o}" for o in busy} <= {r["user"] for r in stack.dify.requests},
            60,
            "every thread answering",
        )
        late = f"o_{uuid.uuid4().hex[:12]}"
        client.post(client.text(late, "你们周末营业吗？"))
        waited = (
            f"SELECT count(*) FROM inbound_messages WHERE customer = '{late}' AND status = "
            f"'received' AND created_at < now() - interval '{NOTICE_AFTER_S} seconds'"
        )
        wait_until(lambda: stack.sql(waited)[0][0] == 1, 60, "the question waiting")
        for _ in range(2):  # two beats: one notice
            celery.send_task("app.tasks.notify_waiting", queue="default")
        wait_until(lambda: stack.sent_to(late), 30, "the notice")
        [answer] = wait_until(
            lambda: [m for m in stack.sent_to(late) if m["content"] != NOTICE],
            120,
            "the answer after the notice",
        )
        assert [m["content"] for m in stack.sent_to(late)] == [NOTICE, answer["content"]]
        for openid in busy:  # being answered, not waiting: no notice
            wait_until(lambda o=openid: stack.sent_to(o), 60, "the busy ones' answers")
            assert [m["content"] for m in stack.sent_to(openid)] != [NOTICE]
            assert len(stack.sent_to(openid)) == 1
    finally:
        stack.dify.latency_s = 4.0
        celery.close()


def test_a_customers_questions_are_answered_in_the_order_they_came(stack: Stack) -> None:
    """The first question takes the Dify app 9 s, the second 4 s: answered side by side,
    the second would arrive first, asked without the first in its conversation."""
    client = stack.client()
    openid = f"o_{uuid.uuid4().hex[:12]}"
    first, second = "你们能开发票吗？", "那电子发票发到哪里？"
    stack.dify.slow_s = 9.0
    stack.dify.fail_next("slow")
    client.post(client.text(openid, first))
    wait_until(
        lambda: any(r["user"] == f"wechat:{openid}" for r in stack.dify.requests),
        60,
        "the first question at the Dify app",
    )
    client.post(client.text(openid, second))
    wait_until(lambda: len(stack.sent_to(openid)) == 2, 90, "both answers")
    assert [m["content"] for m in stack.sent_to(openid)] == [
        f"第1轮：您问的是“{first}”。",
        f"第2轮：您问的是“{second}”。",
    ]
