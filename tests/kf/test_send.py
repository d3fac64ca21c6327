"""Sending on 微信客服 against the simulator over HTTP: replies only while the session is the
bot's (95018 never retried, and not even tried while a person holds it), 5 per customer
message, the welcome inside its 20 s and once, hand-over to the queue or a servicer, and
the token shared and refreshed like WeCom's."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from app.channels.api_client import WeChatAPIError
from app.channels.kf import CHANNEL, handoff
from app.channels.kf.api import (
    SEND_MSG,
    SEND_MSG_ON_EVENT,
    KfAPI,
    KfChannel,
    ServiceState,
    token_key,
)
from app.extensions import db
from app.simulator.kf import KfSimulator
from app.simulator.kf_server import create_kf_simulator_app
from app.simulator.server import ServerHandle, serve_in_thread
from app.simulator.wecom import GETTOKEN
from app.store import AccessToken, InboundMessage
from tests.kf.conftest import CORP, SECRET, SERVICER, kf_app

Sim = tuple[KfSimulator, ServerHandle]


def _channel(app: Flask, sim: KfSimulator, **kwargs: object) -> KfChannel:
    return KfChannel(app.extensions["settings"], open_kfid=sim.default_account, **kwargs)


def _sends(sim: KfSimulator) -> list[dict]:
    return [c for c in sim.calls if c["path"] == SEND_MSG]


def test_five_replies_per_customer_message_then_95001(app: Flask, sim: Sim) -> None:
    simulator, _ = sim
    simulator.customer_sends("wmA", "你好")
    channel = _channel(app, simulator)
    for i in range(5):
        channel.send_text("wmA", f"第{i}段")
    assert simulator.session("wmA").state == ServiceState.BOT
    with pytest.raises(WeChatAPIError) as exc:
        channel.send_text("wmA", "第六段")
    assert exc.value.errcode == 95001 and not exc.value.retryable
    simulator.customer_sends("wmA", "还有呢")  # the customer's next message renews the quota
    channel.send_text("wmA", "好的")
    sent = simulator.sent
    assert [m["content"] for m in sent][-1] == "好的" and len(sent) == 6
    assert all(m["open_kfid"] == simulator.default_account for m in sent)
    # One service_state/get per customer and channel object, not one per piece.
    assert len([c for c in simulator.calls if c["path"].endswith("service_state/get")]) == 1


def test_the_bot_stays_silent_while_a_person_holds_the_session(app: Flask, sim: Sim) -> None:
    simulator, _ = sim
    simulator.customer_sends("wmB", "转人工")
    simulator.servicer_takes("wmB", SERVICER)
    with pytest.raises(WeChatAPIError) as exc:
        _channel(app, simulator).send_text("wmB", "机器人的回答")
    assert exc.value.errcode == 95018 and not exc.value.retryable
    assert _sends(simulator) == []  # not even tried
    assert handoff.person_holds(KfAPI(app.extensions["settings"]), simulator.default_account, "wmB")

    # Without the check (a race: taken between check and send) WeChat's 95018 is
    # permanent too: one call, no loop.
    with pytest.raises(WeChatAPIError) as raced:
        _channel(app, simulator, check_state=False).send_text("wmB", "机器人的回答")
    assert raced.value.errcode == 95018 and not raced.value.retryable
    assert [c["errcode"] for c in _sends(simulator)] == [95018]
    assert simulator.sent == []


def test_the_account_is_the_one_the_customer_wrote_to(app: Flask, sim: Sim) -> None:
    simulator, _ = sim
    simulator.customer_sends("wmC", "在吗")
    db.session.add(
        InboundMessage(
            channel=CHANNEL,
            dedup_key="m1",
            account=simulator.default_account,
            customer="wmC",
            msg_type="text",
            content="在吗",
        )
    )
    db.session.commit()
    KfChannel(app.extensions["settings"]).send_text("wmC", "在的")
    assert simulator.sent[0]["open_kfid"] == simulator.default_account
    with pytest.raises(WeChatAPIError) as exc:
        KfChannel(app.extensions["settings"]).send_text("wmNobody", "?")
    assert exc.value.errcode == 95000 and not exc.value.retryable


def test_the_welcome_goes_once_within_its_20_seconds(pg_url: str, tmp_path: Path) -> None:
    now = [1_700_000_000.0]
    simulator = KfSimulator(CORP, SECRET, clock=lambda: now[0])
    with serve_in_thread(create_kf_simulator_app(simulator)) as server:
        app = kf_app(tmp_path, pg_url, server.url)
        with app.app_context():
            api, settings = KfAPI(app.extensions["settings"]), app.extensions["settings"]
            code = simulator.customer_enters("wmD")
            assert code
            now[0] += 19
            assert handoff.welcome(api, settings, code)
            assert not handoff.welcome(api, settings, code)  # used
            assert simulator.customer_enters("wmD") == ""  # welcomed within 48 hours
            late = simulator.customer_enters("wmE")
            now[0] += 21
            assert not handoff.welcome(api, settings, late)  # expired
            welcomes = [m for m in simulator.sent if m["via"] == "send_msg_on_event"]
            assert [(m["touser"], m["kind"]) for m in welcomes] == [("wmD", "welcome")]
            assert welcomes[0]["content"] == settings.kf_welcome
            # Never retried: one call each.
            assert len([c for c in simulator.calls if c["path"] == SEND_MSG_ON_EVENT]) == 3
            db.session.remove()
            db.engine.dispose()


def test_hand_over_to_the_queue_tells_the_customer(app: Flask, sim: Sim) -> None:
    simulator, _ = sim
    simulator.customer_sends("wmF", "人工")
    api, settings = KfAPI(app.extensions["settings"]), app.extensions["settings"]
    done = handoff.hand_over(api, settings, simulator.default_account, "wmF")
    assert done == handoff.HandOver(ServiceState.QUEUED, moved=True, told=True)
    assert simulator.session("wmF").state == ServiceState.QUEUED
    told = simulator.sent[-1]
    assert (told["kind"], told["content"]) == ("queue", settings.kf_handoff_reply)
    # Asked again: left where it is; and the bot stays silent meanwhile.
    assert not handoff.hand_over(api, settings, simulator.default_account, "wmF").moved
    with pytest.raises(WeChatAPIError):
        _channel(app, simulator).send_text("wmF", "机器人")


def test_hand_over_to_a_servicer_or_the_queue_when_they_cannot(
    pg_url: str, tmp_path: Path, sim: Sim
) -> None:
    simulator, server = sim
    simulator.customer_sends("wmG", "人工")
    simulator.customer_sends("wmH", "人工")
    app = kf_app(tmp_path, pg_url, server.url, kf_servicer_userid=SERVICER)
    with app.app_context():
        api, settings = KfAPI(app.extensions["settings"]), app.extensions["settings"]
        done = handoff.hand_over(api, settings, simulator.default_account, "wmG")
        assert done.state == ServiceState.HUMAN and done.moved
        assert simulator.session("wmG").servicer == SERVICER
        off_duty = settings.model_copy(update={"kf_servicer_userid": "lisi"})
        done = handoff.hand_over(api, off_duty, simulator.default_account, "wmH")
        assert done.state == ServiceState.QUEUED and done.moved
        db.session.remove()
        db.engine.dispose()


def test_one_token_for_every_process_refreshed_once(app: Flask, sim: Sim) -> None:
    simulator, _ = sim
    simulator.customer_sends("wmI", "你好")
    _channel(app, simulator).send_text("wmI", "一")
    _channel(app, simulator).send_text("wmI", "二")  # another process: the same token row
    assert simulator.token_requests == {GETTOKEN: 1}
    assert db.session.get(AccessToken, token_key(CORP)) is not None
    simulator.expire_all_tokens()
    _channel(app, simulator).send_text("wmI", "三")
    assert simulator.token_requests == {GETTOKEN: 2}
    assert [c["errcode"] for c in simulator.calls if c["errcode"]] == [42001]
    assert [m["content"] for m in simulator.sent] == ["一", "二", "三"]


def test_a_wrong_secret_is_permanent(pg_url: str, tmp_path: Path, sim: Sim) -> None:
    simulator, server = sim
    app = kf_app(tmp_path, pg_url, server.url, kf_secret="not-the-kf-secret")
    with app.app_context(), pytest.raises(WeChatAPIError) as exc:
        KfAPI(app.extensions["settings"]).service_state(simulator.default_account, "wmJ")
    assert exc.value.errcode == 40001 and not exc.value.retryable
    assert simulator.token_requests == {GETTOKEN: 1}
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
