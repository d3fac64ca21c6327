"""WeComAPI against the WeCom simulator over HTTP, with the shared token in a real store:
bounded retries on WeCom's codes, one gettoken per expiry, permanent errors not retried."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from app.channels import api_for
from app.channels.api_client import WeChatAPIError
from app.channels.wecom.api import WeComAPI
from app.simulator.server import ServerHandle, serve_in_thread
from app.simulator.wecom import GETTOKEN, SEND, WeComAPISimulator, create_wecom_simulator_app
from tests.integration.test_wechat_callback import _app

CORP, SECRET, AGENT = "ww0123456789abcdef", "wecom-secret", "1000002"


@pytest.fixture()
def wsim() -> Iterator[tuple[WeComAPISimulator, ServerHandle]]:
    sim = WeComAPISimulator(CORP, SECRET, AGENT, members={"zhangsan"}, with_rid=True)
    handle = serve_in_thread(create_wecom_simulator_app(sim))
    yield sim, handle
    handle.stop()


def _wecom_app(tmp_path: Path, base_url: str, secret: str = SECRET) -> Flask:
    return _app(
        tmp_path,
        wecom_token="wecomtoken9",
        wecom_aes_key="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        wecom_corp_id=CORP,
        wecom_agent_id=AGENT,
        wecom_secret=secret,
        wecom_api_base_url=base_url,
        wechat_send_retries=2,
    )


@pytest.fixture()
def app(tmp_path: Path, wsim: tuple[WeComAPISimulator, ServerHandle]) -> Iterator[Flask]:
    app = _wecom_app(tmp_path, wsim[1].url)
    with app.app_context():
        yield app


def _api(app: Flask) -> WeComAPI:
    api = api_for("wecom", app.extensions["settings"])
    assert isinstance(api, WeComAPI)
    return api


def test_send_uses_one_token_for_every_process(
    app: Flask, wsim: tuple[WeComAPISimulator, ServerHandle]
) -> None:
    sim, _ = wsim
    # Two API objects stand for two worker processes: the token row is shared.
    _api(app).send_text("zhangsan", "第一条")
    _api(app).send_text("zhangsan", "第二条")
    assert [m["content"] for m in sim.sent] == ["第一条", "第二条"]
    assert sim.sent[0]["agentid"] == int(AGENT)
    assert sim.token_requests == {GETTOKEN: 1}


def test_expired_token_costs_one_gettoken(
    app: Flask, wsim: tuple[WeComAPISimulator, ServerHandle]
) -> None:
    sim, _ = wsim
    _api(app).send_text("zhangsan", "before")
    sim.expire_all_tokens()
    _api(app).send_text("zhangsan", "after")
    _api(app).send_text("zhangsan", "and again")
    assert [m["content"] for m in sim.sent] == ["before", "after", "and again"]
    assert sim.token_requests == {GETTOKEN: 2}
    assert [c["errcode"] for c in sim.calls if c["path"] == SEND] == [0, 42001, 0, 0]


def test_busy_is_retried_and_permanent_errors_are_not(
    app: Flask, wsim: tuple[WeComAPISimulator, ServerHandle]
) -> None:
    sim, _ = wsim
    sim.inject(SEND, -1)
    sim.inject(SEND, 0, http_status=503)
    _api(app).send_text("zhangsan", "delivered once")
    assert [m["content"] for m in sim.sent] == ["delivered once"]
    for code in (81013, 60020, 45009):
        sim.inject(SEND, code)
        with pytest.raises(WeChatAPIError) as exc:
            _api(app).send_text("zhangsan", "never")
        assert exc.value.errcode == code and not exc.value.retryable
    with pytest.raises(WeChatAPIError) as exc:
        _api(app).send_text("not-visible", "never")
    assert exc.value.errcode == 81013
    # A token storm beyond the retry budget gives up (the task retries later), boundedly.
    sim.inject(SEND, 40014, times=5)
    with pytest.raises(WeChatAPIError) as exc:
        _api(app).send_text("zhangsan", "never")
    assert exc.value.errcode == 40014 and exc.value.retryable
    assert len(sim.sent) == 1
    assert len([c for c in sim.calls if c["path"] == SEND]) == 3 + 3 + 1 + 3


def test_wrong_secret_is_a_permanent_error(tmp_path: Path) -> None:
    sim = WeComAPISimulator(CORP, "the-real-secret", AGENT)
    with serve_in_thread(create_wecom_simulator_app(sim)) as server:
        app = _wecom_app(tmp_path, server.url, secret="a-wrong-secret")
        with app.app_context(), pytest.raises(WeChatAPIError) as exc:
            _api(app).send_text("zhangsan", "never")
    assert exc.value.errcode == 40001 and not exc.value.retryable
    assert sim.token_requests == {GETTOKEN: 1}
