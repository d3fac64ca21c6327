"""ANSWER_BACKEND=dify, the answerer itself: what it asks Dify's chat-messages API and
what it makes of the answers and errors, against the fake Dify over real HTTP, with the
conversations in PostgreSQL. The whole WeChat path is in tests/e2e/test_dify_app_backend.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
import sqlalchemy as sa

from app.dify.app_backend import (
    DifyAppAnswerer,
    DifyAppClient,
    DifyAppUnavailable,
    DifyConversations,
)
from app.pipeline.answer import REFUSAL_TEXT
from app.pipeline.sensitive import SensitiveWordFilter
from app.settings import Settings
from app.simulator.server import serve_in_thread
from app.store import DifyConversation
from tests.conftest import temp_pg_database
from tests.dify.fake_app_api import FakeDifyApp, create_fake_dify_app
from tests.support import wait_until

KEY = "app-7f3c1e0d9b8a"


@pytest.fixture(scope="module")
def engine() -> Iterator[sa.Engine]:
    with temp_pg_database() as url:
        engine = sa.create_engine(url)
        DifyConversation.__table__.create(engine)
        yield engine
        engine.dispose()


@pytest.fixture()
def dify() -> Iterator[tuple[FakeDifyApp, str]]:
    fake = FakeDifyApp(KEY)
    handle = serve_in_thread(create_fake_dify_app(fake))
    yield fake, handle.url + "/v1"
    handle.stop()


def _answerer(
    engine: sa.Engine, url: str, *, key: str = KEY, timeout_s: float = 10, ttl_s: int = 1800
) -> DifyAppAnswerer:
    return DifyAppAnswerer(
        DifyAppClient(url, key, timeout_s=timeout_s),
        DifyConversations(engine, ttl_s=ttl_s),
        inputs={"shop": "云朵小铺"},
        sensitive=SensitiveWordFilter(["傻瓜"]),
        fallback_text=REFUSAL_TEXT,
    )


def _customer() -> str:
    import uuid

    return f"wechat:o_{uuid.uuid4().hex[:12]}"


def test_the_question_goes_to_dify_as_its_api_wants_and_the_answer_is_fit_for_wechat(
    engine: sa.Engine, dify: tuple[FakeDifyApp, str]
) -> None:
    fake, url = dify
    customer = _customer()
    answer = _answerer(engine, url).answer("退货运费谁出？我的电话13812345678", customer=customer)

    [asked] = fake.asked(customer)
    assert asked["response_mode"] == "blocking"
    assert asked["inputs"] == {"shop": "云朵小铺"}
    assert asked["conversation_id"] == ""
    assert "13812345678" not in asked["query"]  # Dify keeps logs: no phone numbers
    assert asked["query"].startswith("退货运费谁出？")
    # R1's reasoning and the Markdown are gone; the words are kept.
    assert "<think>" not in answer.text and "顾客问的是" not in answer.text
    assert answer.text.startswith("第1轮：您问的是")  # "**第1轮**：" was Markdown
    assert not answer.refused
    assert answer.sources == [{"source": "售后服务政策.md", "section": "售后政策", "score": 0.87}]
    assert answer.prompt_tokens == 120 and answer.completion_tokens == 30


def test_a_customer_stays_in_one_dify_conversation_and_others_get_their_own(
    engine: sa.Engine, dify: tuple[FakeDifyApp, str]
) -> None:
    fake, url = dify
    answerer = _answerer(engine, url)
    alice, bob = _customer(), _customer()
    answerer.answer("空气炸锅保修多久？", customer=alice)
    second = answerer.answer("那电饭煲呢？", customer=alice)
    answerer.answer("怎么开发票？", customer=bob)

    first_a, second_a = fake.asked(alice)
    [first_b] = fake.asked(bob)
    conversation = next(c for c, user in fake.conversations.items() if user == alice)
    assert first_a["conversation_id"] == "" and second_a["conversation_id"] == conversation
    assert second.text.startswith("第2轮")  # the app saw the follow-up in context
    assert first_b["conversation_id"] == ""
    assert fake.conversations[conversation] == alice


def test_a_conversation_left_for_longer_than_the_memory_starts_afresh(
    engine: sa.Engine, dify: tuple[FakeDifyApp, str]
) -> None:
    fake, url = dify
    answerer = _answerer(engine, url, ttl_s=60)
    customer = _customer()
    answerer.answer("你好", customer=customer)
    with engine.begin() as conn:
        conn.execute(
            sa.update(DifyConversation)
            .where(DifyConversation.customer == customer)
            .values(updated_at=datetime.now(UTC) - timedelta(seconds=61))
        )
    again = answerer.answer("还在吗", customer=customer)
    assert [r["conversation_id"] for r in fake.asked(customer)] == ["", ""]
    assert again.text.startswith("第1轮")


def test_a_conversation_deleted_in_dify_is_replaced_and_the_question_answered(
    engine: sa.Engine, dify: tuple[FakeDifyApp, str]
) -> None:
    fake, url = dify
    answerer = _answerer(engine, url)
    customer = _customer()
    answerer.answer("你好", customer=customer)
    old = next(c for c, user in fake.conversations.items() if user == customer)
    fake.forget(old)

    answer = answerer.answer("发什么快递？", customer=customer)
    ids = [r["conversation_id"] for r in fake.asked(customer)]
    assert ids == ["", old, ""]  # asked in the old one, got 404, asked in a new one
    assert answer.text.startswith("第1轮") and not answer.refused
    third = answerer.answer("多久到？", customer=customer)
    assert third.text.startswith("第2轮")


@pytest.mark.parametrize("kind", ["rate_limit", "internal", "gateway"])
def test_dify_busy_or_down_is_retried_later_not_answered(
    engine: sa.Engine, dify: tuple[FakeDifyApp, str], kind: str
) -> None:
    fake, url = dify
    fake.fail_next(kind)
    customer = _customer()
    with pytest.raises(DifyAppUnavailable):
        _answerer(engine, url).answer("在吗", customer=customer)
    # Nothing remembered from the failed call: the retry starts the conversation.
    assert _answerer(engine, url).answer("在吗", customer=customer).text.startswith("第1轮")


def test_dify_slower_than_the_timeout_or_not_listening_is_retried_later(
    engine: sa.Engine, dify: tuple[FakeDifyApp, str]
) -> None:
    fake, url = dify
    fake.fail_next("slow")
    with pytest.raises(DifyAppUnavailable):
        _answerer(engine, url, timeout_s=2).answer("在吗", customer=_customer())
    with pytest.raises(DifyAppUnavailable, match="not reachable"):
        _answerer(engine, "http://127.0.0.1:9/v1").answer("在吗", customer=_customer())


def test_a_retry_takes_the_answer_dify_gave_after_the_worker_stopped_waiting(
    engine: sa.Engine, dify: tuple[FakeDifyApp, str]
) -> None:
    """Dify finishes an answer the worker gave up on (or died waiting for): the retry takes
    it, so the question is not put into the customer's conversation twice."""
    fake, url = dify
    fake.slow_s = 4
    answerer = _answerer(engine, url, timeout_s=2)
    for first_question in (True, False):  # Dify's conversation unknown here, then known
        customer = _customer()
        if not first_question:
            answerer.answer("在吗", customer=customer)
        asked_at = datetime.now(UTC)
        fake.fail_next("slow")
        with pytest.raises(DifyAppUnavailable):
            answerer.answer("退货运费谁出？", customer=customer)
        # Dify is still writing: the retry waits for it rather than asking again.
        with pytest.raises(DifyAppUnavailable, match="still answering"):
            answerer.earlier_answer("退货运费谁出？", customer=customer, since=asked_at)
        again = wait_until(
            partial(answerer.earlier_answer, "退货运费谁出？", customer=customer, since=asked_at),
            15,
            "the answer Dify finished",
        )
        turn = 1 if first_question else 2
        assert again.text == f"第{turn}轮：您问的是“退货运费谁出？”。"
        assert len(fake.asked(customer)) == turn  # asked once

        # Another question, or the same words asked before this message, are asked anew.
        assert answerer.earlier_answer("能开发票吗？", customer=customer, since=asked_at) is None
        later = asked_at + timedelta(minutes=5)
        assert answerer.earlier_answer("退货运费谁出？", customer=customer, since=later) is None


@pytest.mark.parametrize("kind", ["app_unavailable", "provider_not_initialize", "wrong_key"])
def test_an_app_that_cannot_answer_gives_the_hand_off_reply_and_logs_why(
    engine: sa.Engine,
    dify: tuple[FakeDifyApp, str],
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, url = dify
    key = KEY
    if kind == "wrong_key":
        key = "app-not-the-key"
    else:
        fake.fail_next(kind)
    with caplog.at_level(logging.ERROR, logger="app.dify.app_backend"):
        answer = _answerer(engine, url, key=key).answer("在吗", customer=_customer())
    assert answer.refused and answer.handoff and answer.text == REFUSAL_TEXT
    code = "unauthorized" if kind == "wrong_key" else kind
    assert code in caplog.text


def test_reasoning_in_a_details_block_and_sensitive_words_never_reach_the_customer(
    engine: sa.Engine, dify: tuple[FakeDifyApp, str]
) -> None:
    fake, url = dify
    fake.answer = lambda query, turn: (
        '<details style="color:gray" open> <summary> Thinking... </summary>想一想</details>'
        "您好傻瓜，客服电话 13912345678，请拨打。"
    )
    answer = _answerer(engine, url).answer("电话多少", customer=_customer())
    assert "想一想" not in answer.text and "Thinking" not in answer.text
    assert "傻瓜" not in answer.text and "13912345678" not in answer.text
    assert answer.text.startswith("您好")


def test_an_empty_answer_becomes_the_hand_off_reply(
    engine: sa.Engine, dify: tuple[FakeDifyApp, str]
) -> None:
    fake, url = dify
    fake.answer = lambda query, turn: "<think>不知道</think>"
    answer = _answerer(engine, url).answer("在吗", customer=_customer())
    assert answer.refused and answer.text == REFUSAL_TEXT


def test_the_dify_backend_refuses_to_start_without_its_url_or_key() -> None:
    with pytest.raises(ValueError, match="DIFY_APP_API_URL"):
        Settings(answer_backend="dify", dify_app_api_key=KEY)
    with pytest.raises(ValueError, match="DIFY_APP_API_KEY"):
        Settings(answer_backend="dify", dify_app_api_url="http://dify.internal/v1")
    ok = Settings(
        answer_backend="dify", dify_app_api_url="http://dify.internal/v1", dify_app_api_key=KEY
    )
    assert not ok.instant_faq  # the Dify app answers FAQ questions too


def test_healthz_names_the_dify_app_and_says_why_it_cannot_answer(
    dify: tuple[FakeDifyApp, str], tmp_path
) -> None:
    from app import create_app
    from app.dify.app_backend import DifyAppRejected
    from app.extensions import db
    from app.health import check_dify_app, overall
    from app.settings import load_settings
    from tests.support import free_port

    fake, url = dify

    def settings(api_url: str = url, key: str = KEY) -> Settings:
        return load_settings(
            data_dir=tmp_path, answer_backend="dify", dify_app_api_url=api_url, dify_app_api_key=key
        )

    app = create_app(settings())
    with app.app_context():
        db.create_all()
    check = app.test_client().get("/healthz").get_json()["checks"]["dify_app"]
    assert check["ok"] and check["detail"] == "云朵小铺客服 (advanced-chat)"

    # Dify failing is reported, but messages are still taken: no 503 for that alone.
    fake.api_key = "app-rotated"
    report = app.test_client().get("/healthz").get_json()["checks"]
    assert report["dify_app"]["detail"] == "auth failed"  # no exception text (public)
    fake.api_key = KEY
    inside_ok = {name: {**c, "ok": True} for name, c in report.items() if name != "dify_app"}
    assert overall({**inside_ok, "dify_app": report["dify_app"]}) == ("degraded", 200)
    assert overall({**inside_ok, "dify_app": check}) == ("ok", 200)
    assert overall({**report, "dify_app": check, "milvus": {"ok": False}}) == ("unavailable", 503)

    with pytest.raises(DifyAppRejected, match="401 unauthorized: Access token is invalid"):
        check_dify_app(settings(key="app-wrong"))
    fake.mode = "workflow"  # an editor pointed the key at a workflow app
    with pytest.raises(RuntimeError, match="workflow app has no chat-messages API"):
        check_dify_app(settings())
    fake.mode = "agent-chat"
    with pytest.raises(RuntimeError, match="blocking mode"):
        check_dify_app(settings())
    fake.mode, fake.has_info = "chat", False  # a Dify before GET /info: reachable is all
    assert check_dify_app(settings()) == "app (mode unknown)"
    with pytest.raises(DifyAppRejected, match="401"):
        check_dify_app(settings(key="app-wrong"))
    with pytest.raises(DifyAppUnavailable, match="not reachable"):
        check_dify_app(settings(api_url=f"http://127.0.0.1:{free_port()}/v1"))
