"""ANSWER_BACKEND=dify on the production path: signed WeChat callbacks into gunicorn, a
Celery worker on Redis, PostgreSQL; a Dify chat app (the fake of tests/dify/fake_app_api.py)
answers instead of the built-in pipeline; WeChat played by the simulator."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from app.messages.answering import FAILED_TEXT
from app.simulator.callback_client import CallbackClient
from app.simulator.state import WeChatAPISimulator
from tests.dify.fake_app_api import FakeDifyApp
from tests.dify.stack import dify_backed_stack
from tests.support import WECHAT, Processes, wait_until

pytestmark = pytest.mark.slow

APP_ID = "wxd1f7a99b0c2e4f61"  # an account of its own (token rows, simulator)
KEY = "app-e2e-5a1b2c3d"
FAQ = "付款后多久发货？"
ATTEMPTS = 3  # the built-in pipeline would answer this one in the web process


@dataclass
class DifyBackedService:
    url: str
    sim: WeChatAPISimulator
    dify: FakeDifyApp

    def client(self) -> CallbackClient:
        return CallbackClient(self.url + "/wechat", WECHAT["token"], APP_ID)

    def sent_to(self, openid: str) -> list[dict]:
        return [m for m in self.sim.sent if m.get("touser") == openid]


@pytest.fixture(scope="module")
def dify_backed(
    tmp_path_factory: pytest.TempPathFactory, processes: Processes, milvus_uri: str
) -> Iterator[DifyBackedService]:
    with dify_backed_stack(
        "difyapp",
        tmp_path_factory.mktemp("dify-backed"),
        processes,
        milvus_uri,
        app_id=APP_ID,
        dify=FakeDifyApp(KEY),
        DIFY_APP_INPUTS='{"channel": "wechat"}',
        DIFY_APP_TIMEOUT_S="10",
        ANSWER_RETRY_BACKOFF_S="1",
        ANSWER_MAX_ATTEMPTS=str(ATTEMPTS),
    ) as stack:
        yield DifyBackedService(stack.url, stack.sim, stack.dify)


def test_questions_are_answered_by_the_dify_app_once_in_one_conversation(
    dify_backed: DifyBackedService,
) -> None:
    client = dify_backed.client()
    openid = f"o_{uuid.uuid4().hex[:12]}"
    user = f"wechat:{openid}"
    xml = client.text(openid, FAQ)
    for _ in range(3):  # WeChat's three tries of one MsgId
        started = time.monotonic()
        resp = client.post(xml)
        assert resp.status_code == 200 and resp.text == ""  # no instant FAQ reply
        assert time.monotonic() - started < 4.5

    [sent] = wait_until(lambda: dify_backed.sent_to(openid), 60, "the Dify answer at WeChat")
    assert sent["content"] == f"第1轮：您问的是“{FAQ}”。"  # reasoning and Markdown gone
    [asked] = dify_backed.dify.asked(user)
    assert asked["inputs"] == {"channel": "wechat"} and asked["conversation_id"] == ""

    client.post(client.text(openid, "那能发顺丰吗？"))
    wait_until(lambda: len(dify_backed.sent_to(openid)) == 2, 60, "the follow-up's answer")
    sent = dify_backed.sent_to(openid)
    assert sent[1]["content"].startswith("第2轮")  # the app's conversation continued
    first, second = dify_backed.dify.asked(user)
    assert second["conversation_id"] and second["conversation_id"] != first["conversation_id"]


def test_dify_down_for_a_while_the_customer_is_answered_once_when_it_is_back(
    dify_backed: DifyBackedService,
) -> None:
    dify_backed.dify.fail_next("internal")
    dify_backed.dify.fail_next("gateway")
    client = dify_backed.client()
    openid = f"o_{uuid.uuid4().hex[:12]}"
    client.post(client.text(openid, "退货运费谁出？"))

    [sent] = wait_until(lambda: dify_backed.sent_to(openid), 90, "the answer after retries")
    assert sent["content"].startswith("第1轮")
    assert len(dify_backed.dify.asked(f"wechat:{openid}")) == 3  # 500, 502, then the answer


def test_dify_slower_than_the_worker_waits_answers_once_and_is_asked_once(
    dify_backed: DifyBackedService,
) -> None:
    """The worker gives up after DIFY_APP_TIMEOUT_S (10 s) while Dify goes on writing; the
    retry takes the answer Dify stored instead of putting the question in twice."""
    dify_backed.dify.slow_s = 12
    dify_backed.dify.fail_next("slow")
    client = dify_backed.client()
    openid = f"o_{uuid.uuid4().hex[:12]}"
    client.post(client.text(openid, "发票怎么开？"))

    [sent] = wait_until(lambda: dify_backed.sent_to(openid), 90, "the answer Dify finished")
    assert sent["content"] == "第1轮：您问的是“发票怎么开？”。"
    assert len(dify_backed.dify.asked(f"wechat:{openid}")) == 1  # not asked again


def test_an_app_that_keeps_failing_leaves_the_customer_a_notice_not_silence(
    dify_backed: DifyBackedService,
) -> None:
    dify_backed.dify.fail_next("internal", times=ATTEMPTS)
    client = dify_backed.client()
    openid = f"o_{uuid.uuid4().hex[:12]}"
    client.post(client.text(openid, "你们几点关门？"))

    [sent] = wait_until(lambda: dify_backed.sent_to(openid), 90, "the failure notice")
    assert sent["content"] == FAILED_TEXT
    assert len(dify_backed.dify.asked(f"wechat:{openid}")) == ATTEMPTS
    client.post(client.text(openid, "在吗"))  # the next question is answered as usual
    wait_until(lambda: len(dify_backed.sent_to(openid)) == 2, 60, "the next answer")
    assert dify_backed.sent_to(openid)[1]["content"].startswith("第1轮")
