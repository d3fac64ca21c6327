"""What becomes of each message a 微信客服 sync reads (app/channels/kf/intake.py), against the
simulator over HTTP, on PostgreSQL: stored once by msgid and its answer queued; the welcome
at once and once; silence while people hold the session; a customer who asks for a person
handed over and recorded; fixed replies sent; broken messages logged, not raised; voice
stored in the format sync_msg asked for; and the Celery task around the sync."""

from __future__ import annotations

from typing import Any

import pytest
from celery.exceptions import Retry
from flask import Flask

from app.channels.kf import CHANNEL, cursor
from app.channels.kf.api import SEND_MSG, SYNC_MSG, KfAPI, KfChannel, ServiceState
from app.channels.kf.controller import ENQUEUE
from app.channels.kf.intake import Taker, enqueue_sync
from app.channels.kf.sync import sync_account
from app.conversations.handoffs import ASKED_FOR_PERSON
from app.extensions import db
from app.messages import inbound
from app.simulator.kf import KfSimulator
from app.simulator.server import ServerHandle
from app.store import HandoffRequest, InboundMessage
from app.tasks import sync_kf, sync_kf_accounts
from tests.kf.conftest import SERVICER

Sim = tuple[KfSimulator, ServerHandle]


@pytest.fixture()
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The answers take_in queues (the Celery task is not run here)."""
    ids: list[int] = []
    monkeypatch.setattr(inbound, "enqueue_answer", lambda message_id: ids.append(message_id))
    return ids


def _sync(app: Flask, sim: KfSimulator, **kwargs: Any):  # noqa: ANN202
    settings = app.extensions["settings"]
    api = KfAPI(settings)
    token = sim.take_notifications()[-1].token
    return sync_account(
        api,
        sim.default_account,
        Taker(api, settings),
        token=token,
        lock_dir=settings.data_dir / "locks",
        **kwargs,
    )


def _rows(customer: str) -> list[InboundMessage]:
    rows = db.session.scalars(
        db.select(InboundMessage)
        .where(InboundMessage.channel == CHANNEL, InboundMessage.customer == customer)
        .order_by(InboundMessage.id)
    ).all()
    db.session.commit()
    return list(rows)


def test_messages_are_stored_once_and_their_answers_queued(
    app: Flask, sim: Sim, queued: list[int]
) -> None:
    simulator, _ = sim
    simulator.page_size = 2
    first = simulator.customer_sends("wmA", "我的订单还没发货")
    simulator.customer_sends("wmA", "满多少包邮？")
    simulator.customer_sends("wmB", "怎么开发票")
    simulator.repeat(first)  # WeChat hands the first one out again
    result = _sync(app, simulator)
    assert result.pages == 2 and len(result.taken) == 3  # the repeat skipped
    rows = _rows("wmA") + _rows("wmB")
    assert [(r.content, r.status) for r in rows] == [
        ("我的订单还没发货", "received"),
        ("满多少包邮？", "received"),
        ("怎么开发票", "received"),
    ]
    assert queued == [r.id for r in rows]
    # A killed reader's page taken in again: nothing is stored or queued twice, and WeChat
    # is not even asked about those sessions again.
    calls = len(simulator.calls)
    taker = Taker(KfAPI(app.extensions["settings"]), app.extensions["settings"])
    for msg in result.taken:
        taker(msg)
    assert len(_rows("wmA") + _rows("wmB")) == 3 and len(queued) == 3
    assert len(simulator.calls) == calls


def test_the_welcome_goes_at_once_and_once(app: Flask, sim: Sim, queued: list[int]) -> None:
    simulator, _ = sim
    simulator.customer_enters("wmW", scene="menu")
    event = simulator.messages()[-1]
    simulator.repeat(event["msgid"])
    _sync(app, simulator)
    welcomes = [m for m in simulator.sent if m["via"] == "send_msg_on_event"]
    assert [(m["touser"], m["kind"]) for m in welcomes] == [("wmW", "welcome")]
    assert welcomes[0]["content"] == app.extensions["settings"].kf_welcome
    [row] = _rows("wmW")
    assert (row.msg_type, row.status) == ("event:enter_session", "ignored")
    assert queued == []


def test_the_bot_is_silent_while_people_hold_the_session(
    app: Flask, sim: Sim, queued: list[int]
) -> None:
    simulator, _ = sim
    simulator.customer_sends("wmH", "在吗")
    simulator.servicer_takes("wmH", SERVICER)
    simulator.customer_sends("wmH", "我的订单还没发货")
    simulator.servicer_sends("wmH", "您好，我来帮您查", SERVICER)  # origin 5: skipped
    _sync(app, simulator)
    rows = _rows("wmH")
    assert [(r.content, r.status, r.outcome) for r in rows] == [
        ("在吗", "handoff", "handed_off"),
        ("我的订单还没发货", "handoff", "handed_off"),
    ]
    assert queued == [] and simulator.sent == []
    assert not [c for c in simulator.calls if c["errcode"] == 95018]


def test_asking_for_a_person_hands_the_session_over(
    app: Flask, sim: Sim, queued: list[int]
) -> None:
    simulator, _ = sim
    simulator.customer_sends("wmP", "转人工")
    _sync(app, simulator)
    assert simulator.session("wmP").state == ServiceState.QUEUED
    told = simulator.sent[-1]
    assert (told["kind"], told["content"]) == ("queue", app.extensions["settings"].kf_handoff_reply)
    [row] = _rows("wmP")
    assert (row.status, row.outcome) == ("handoff", "handed_off") and queued == []
    [request] = db.session.scalars(db.select(HandoffRequest)).all()
    assert (request.source, request.customer, request.conversation_id, request.reason) == (
        "kf",
        "wmP",
        simulator.default_account,
        ASKED_FOR_PERSON,
    )
    assert request.summary == "转人工"
    # The customer's next message waits for the person: stored, no reply, no second request.
    simulator.customer_sends("wmP", "人呢")
    _sync(app, simulator)
    assert [r.status for r in _rows("wmP")] == ["handoff", "handoff"]
    assert db.session.scalar(db.select(db.func.count()).select_from(HandoffRequest)) == 1


def test_fixed_replies_go_out_through_send_msg(app: Flask, sim: Sim, queued: list[int]) -> None:
    simulator, _ = sim
    simulator.customer_sends(
        "wmL",
        msgtype="location",
        body={"latitude": 31.2, "longitude": 121.4, "name": "上海", "address": "人民广场"},
    )
    _sync(app, simulator)
    [sent] = simulator.sent
    assert sent["via"] == "send_msg" and "上海 人民广场" in sent["content"]
    [row] = _rows("wmL")
    assert (row.msg_type, row.status) == ("location", "answered") and queued == []


def test_a_broken_message_is_logged_not_raised(
    app: Flask, sim: Sim, queued: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    simulator, _ = sim
    taker = Taker(KfAPI(app.extensions["settings"]), app.extensions["settings"])
    base = {"msgid": "m1", "open_kfid": simulator.default_account, "send_time": 1, "origin": 3}
    taker({**base, "msgtype": "text", "text": {"content": "hi"}})  # no external_userid
    taker({**base, "external_userid": "<b>", "msgtype": "text", "text": {"content": "hi"}})
    taker({**base, "external_userid": "wmNobody", "msgtype": "text", "text": {"content": "?"}})
    # The last one: the simulator knows no session of wmNobody's, so send_msg would fail;
    # it is stored and queued, the others dropped with a reason.
    assert "not taken in" in caplog.text and len(queued) == 1


def test_voice_is_stored_in_the_format_sync_msg_asked_for(
    app: Flask, sim: Sim, queued: list[int]
) -> None:
    simulator, _ = sim
    simulator.add_media("MEDIA_V1", b"#!AMR\n" + bytes(32), "audio/amr")
    simulator.customer_sends("wmV", msgtype="voice", body={"media_id": "MEDIA_V1"})
    _sync(app, simulator)
    [row] = _rows("wmV")
    assert (row.msg_type, row.media_id, row.media_format, row.status) == (
        "voice",
        "MEDIA_V1",
        "amr",
        "received",
    )
    assert {r["voice_format"] for r in simulator.sync_requests} == {0}
    # And media/get serves it, with the kf API's token.
    media = KfChannel(app.extensions["settings"]).download_media("MEDIA_V1", 1 << 20)
    assert media.data.startswith(b"#!AMR")


def test_the_callback_queues_the_sync_task(app: Flask) -> None:
    assert app.extensions[ENQUEUE] is enqueue_sync
    routes = app.extensions["celery"].conf.task_routes
    assert routes["app.tasks.sync_kf"] == {"queue": "default"}
    assert "kf-sync-accounts" in app.extensions["celery"].conf.beat_schedule


def test_the_sync_task_reads_and_takes_in(
    app: Flask, sim: Sim, queued: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator, _ = sim
    simulator.customer_sends("wmT", "满多少包邮？")
    token = simulator.take_notifications()[-1].token
    assert sync_kf.run(simulator.default_account, token) == 1
    assert len(queued) == 1 and [r.content for r in _rows("wmT")] == ["满多少包邮？"]
    # Beat's safety net: every known account, without a token.
    delayed: list[tuple] = []
    monkeypatch.setattr(sync_kf, "delay", lambda *args: delayed.append(args))
    assert sync_kf_accounts.run() == 1
    assert delayed == [(simulator.default_account, "")]


def test_the_sync_task_retries_what_may_pass(
    app: Flask, sim: Sim, queued: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator, _ = sim
    retried: list[dict] = []

    def retry(**kwargs: Any) -> Retry:
        retried.append(kwargs)
        raise Retry()

    monkeypatch.setattr(sync_kf, "retry", retry)
    account = simulator.default_account

    def busy(*args: Any, **kwargs: Any) -> None:
        raise cursor.ReaderBusy("another reader")

    with monkeypatch.context() as patched:
        patched.setattr("app.channels.kf.sync.sync_account", busy)
        with pytest.raises(Retry):
            sync_kf.run(account, "tok", queued_at=None)
    assert retried[-1]["args"] == (account, "tok") and retried[-1]["countdown"] < 3

    # A token WeChat no longer takes (expired: 10 minutes): again at once, without it.
    with pytest.raises(Retry):
        sync_kf.run(account, "ENCexpired")
    assert retried[-1]["args"] == (account, "") and retried[-1]["countdown"] == 1
    # Busy WeChat: retried with the token while it lasts, without it after.
    simulator.inject(SYNC_MSG, errcode=-1, times=6)  # two syncs, 3 tries each
    with pytest.raises(Retry):
        sync_kf.run(account, "tok")
    assert retried[-1]["args"] == (account, "tok")
    with pytest.raises(Retry):
        sync_kf.run(account, "tok", queued_at=1.0)  # the callback was long ago
    assert retried[-1]["args"] == (account, "")
    # Rate-limited without a token: beat's next round reads; a permanent error: dropped.
    for _ in range(3):
        sync_kf.run(account, "")
    assert [r["with_token"] for r in simulator.sync_requests][-3:] == [False, False, False]
    assert len(retried) == 4
    assert sync_kf.run("wkNoSuchAccount", "tok") == 0
    assert len(retried) == 4
    assert [c["errcode"] for c in simulator.calls if c["path"] == SEND_MSG] == []

