"""Answering a 微信客服 message (app/messages/answering.py through KfChannel), against the
simulator over HTTP: people who took the session meanwhile end the message as handed off
(95018 never sent, never retried); a refusal goes out before the session is handed over;
an answer is never split beyond the 5 replies a customer message allows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask

from app.channels.kf import CHANNEL
from app.channels.kf.api import (
    SEND_MSG,
    SEND_MSG_ON_EVENT,
    STATE_TRANS,
    KfAPI,
    KfChannel,
    ServiceState,
)
from app.channels.kf.intake import Taker
from app.channels.kf.sync import sync_account
from app.extensions import db
from app.messages import answering, inbound
from app.pipeline.answer import REFUSAL_TEXT, Answer
from app.simulator.kf import KfSimulator
from app.simulator.server import ServerHandle
from app.store import HandoffRequest, InboundMessage
from tests.kf.conftest import SERVICER

Sim = tuple[KfSimulator, ServerHandle]


class Answers:
    """The answer pipeline, answering every question with ``answer``."""

    def __init__(self, answer: Answer) -> None:
        self.answer_given = answer
        self.asked: list[str] = []

    def answer(self, question: str, *, customer: str | None = None) -> Answer:
        self.asked.append(question)
        return self.answer_given


@pytest.fixture()
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    ids: list[int] = []
    monkeypatch.setattr(inbound, "enqueue_answer", lambda message_id: ids.append(message_id))
    return ids


def _ask(app: Flask, sim: KfSimulator, customer: str, question: str, queued: list[int]) -> int:
    """The customer writes and the account is synced: the stored message's id."""
    sim.customer_sends(customer, question)
    _sync(app, sim)
    return queued[-1]


def _sync(app: Flask, sim: KfSimulator) -> None:
    settings = app.extensions["settings"]
    api = KfAPI(settings)
    sync_account(
        api,
        sim.default_account,
        Taker(api, settings),
        token=sim.take_notifications()[-1].token,
        lock_dir=settings.data_dir / "locks",
    )


def _answer(app: Flask, message_id: int, answer: Answer) -> str:
    settings = app.extensions["settings"]
    return answering.answer_message(message_id, settings, Answers(answer), KfChannel(settings))


def _row(message_id: int) -> InboundMessage:
    row = db.session.get(InboundMessage, message_id, populate_existing=True)
    assert row is not None
    return row


def _paths(sim: KfSimulator, *paths: str) -> list[str]:
    return [c["path"] for c in sim.calls if c["path"] in paths]


def test_people_who_took_the_session_meanwhile_end_it_as_handed_off(
    app: Flask, sim: Sim, queued: list[int]
) -> None:
    simulator, _ = sim
    message_id = _ask(app, simulator, "wmS", "我的订单还没发货", queued)
    simulator.servicer_takes("wmS", SERVICER)  # before the worker answers
    assert _answer(app, message_id, Answer("付款后48小时内发货。", outcome="faq")) == "handoff"
    row = _row(message_id)
    assert (row.status, row.outcome, row.attempts) == ("handoff", "handed_off", 1)
    assert "95018" in row.error and [r.status for r in row.replies] == ["failed"]
    assert simulator.sent == []  # the state was read; nothing WeChat would refuse was sent
    # Done: a second delivery of the task (or the sweeper) finds nothing to do.
    assert _answer(app, message_id, Answer("again")) == "skipped"


def test_a_refusal_goes_out_then_the_session_is_handed_over(
    app: Flask, sim: Sim, queued: list[int]
) -> None:
    simulator, _ = sim
    message_id = _ask(app, simulator, "wmR", "你们老板叫什么名字", queued)
    refusal = Answer(REFUSAL_TEXT, refused=True, handoff=True, outcome="refused")
    assert _answer(app, message_id, refusal) == "answered"
    assert _paths(simulator, SEND_MSG, STATE_TRANS, SEND_MSG_ON_EVENT) == [
        SEND_MSG,  # the refusal, while the session is still the bot's
        STATE_TRANS,
        SEND_MSG_ON_EVENT,  # KF_HANDOFF_REPLY, with the code trans returned
    ]
    assert [m["content"] for m in simulator.sent][0] == REFUSAL_TEXT
    assert simulator.session("wmR").state == ServiceState.QUEUED
    row = _row(message_id)
    assert (row.status, row.outcome) == ("answered", "refused")
    [request] = db.session.scalars(db.select(HandoffRequest)).all()
    assert (request.source, request.customer, request.summary) == ("kf", "wmR", row.content)
    # The customer's next message waits for people: stored, nothing queued or sent.
    before = len(queued)
    simulator.customer_sends("wmR", "好的")
    _sync(app, simulator)
    assert len(queued) == before and len(simulator.sent) == 2


def test_an_answer_is_never_split_beyond_five_replies(
    app: Flask, sim: Sim, queued: list[int]
) -> None:
    simulator, _ = sim
    long_text = "".join(f"第{i}段：" + "很长的说明。" * 110 for i in range(8))  # ~16 KB
    message_id = _ask(app, simulator, "wmL", "详细说说", queued)
    assert _answer(app, message_id, Answer(long_text)) == "answered"
    assert len(_row(message_id).replies) == 5 and len(simulator.sent) == 5
    assert not [c for c in simulator.calls if c["errcode"] == 95001]

    # The wait notice (app/messages/waiting.py) counts among the 5.
    message_id = _ask(app, simulator, "wmL", "再说一遍", queued)
    row = _row(message_id)
    row.wait_notice_at = datetime.now(UTC)
    db.session.commit()
    KfChannel(app.extensions["settings"]).send_text("wmL", "马上就好")
    assert _answer(app, message_id, Answer(long_text)) == "answered"
    assert len(_row(message_id).replies) == 4 and len(simulator.sent) == 10
    assert not [c for c in simulator.calls if c["errcode"] == 95001]


def test_other_channels_split_as_before() -> None:
    wecom = InboundMessage(channel="wecom", wait_notice_at=datetime.now(UTC))
    assert answering.max_pieces(wecom) == 5
    assert answering.max_pieces(InboundMessage(channel=CHANNEL, wait_notice_at=None)) == 5
