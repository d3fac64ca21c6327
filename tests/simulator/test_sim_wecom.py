"""The WeCom API simulator over real HTTP: gettoken, message/send and their error codes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from app.simulator.server import ServerHandle, serve_in_thread
from app.simulator.wecom import (
    GETTOKEN,
    PER_MEMBER_PER_MINUTE,
    SEND,
    WeComAPISimulator,
    create_wecom_simulator_app,
)
from tests.simulator.sim_helpers import FakeClock

CORP, SECRET, AGENT = "ww_sim_corp_0001", "wecom-sim-secret", 1000002


@pytest.fixture
def wsim(clock: FakeClock) -> WeComAPISimulator:
    return WeComAPISimulator(CORP, SECRET, AGENT, members={"zhangsan", "lisi"}, clock=clock)


@pytest.fixture
def wserver(wsim: WeComAPISimulator) -> Iterator[ServerHandle]:
    handle = serve_in_thread(create_wecom_simulator_app(wsim))
    yield handle
    handle.stop()


def _token(http: requests.Session, base: str, corpid: str = CORP, secret: str = SECRET) -> dict:
    return http.get(
        base + GETTOKEN, params={"corpid": corpid, "corpsecret": secret}, timeout=5
    ).json()


def _send(http: requests.Session, base: str, token: str | None, body: object) -> dict:
    params = {} if token is None else {"access_token": token}
    return http.post(base + SEND, params=params, json=body, timeout=5).json()


def _text(touser: str, content: str, agentid: object = AGENT) -> dict:
    return {"touser": touser, "msgtype": "text", "agentid": agentid, "text": {"content": content}}


def test_gettoken_returns_the_same_token_until_it_expires(
    wserver: ServerHandle, wsim: WeComAPISimulator, http: requests.Session, clock: FakeClock
) -> None:
    first = _token(http, wserver.url)
    assert first["errcode"] == 0 and first["expires_in"] == 7200
    clock.advance(3600)
    again = _token(http, wserver.url)
    assert again["access_token"] == first["access_token"] and again["expires_in"] == 3600
    clock.advance(3600)
    assert _token(http, wserver.url)["access_token"] != first["access_token"]
    assert wsim.token_requests == {GETTOKEN: 3}


def test_gettoken_errors_are_wecoms(wserver: ServerHandle, http: requests.Session) -> None:
    assert _token(http, wserver.url, corpid="")["errcode"] == 41002
    assert _token(http, wserver.url, corpid="wwother")["errcode"] == 40013
    assert _token(http, wserver.url, secret="")["errcode"] == 41004
    assert _token(http, wserver.url, secret="wrong") == {
        "errcode": 40001,
        "errmsg": "invalid credential",
    }


def test_send_rules_and_codes(
    wserver: ServerHandle, wsim: WeComAPISimulator, http: requests.Session
) -> None:
    token = _token(http, wserver.url)["access_token"]
    ok = _send(http, wserver.url, token, _text("zhangsan|nobody", "您好"))
    assert ok["errcode"] == 0 and ok["invaliduser"] == "nobody" and ok["msgid"]
    codes = [
        _send(http, wserver.url, None, _text("zhangsan", "x"))["errcode"],
        _send(http, wserver.url, "not-a-token", _text("zhangsan", "x"))["errcode"],
        _send(http, wserver.url, token, _text("zhangsan", "x", agentid=None))["errcode"],
        _send(http, wserver.url, token, _text("zhangsan", "x", agentid=7))["errcode"],
        _send(http, wserver.url, token, _text("zhangsan", ""))["errcode"],
        _send(http, wserver.url, token, dict(_text("zhangsan", "x"), msgtype="bogus"))["errcode"],
        _send(http, wserver.url, token, _text("nobody", "x"))["errcode"],
    ]
    assert codes == [41001, 40014, 41011, 40056, 44004, 40008, 81013]
    wsim.expire_all_tokens()
    assert _send(http, wserver.url, token, _text("zhangsan", "x"))["errcode"] == 42001
    [sent] = wsim.sent
    assert (sent["touser"], sent["content"], sent["agentid"]) == ("zhangsan", "您好", AGENT)


def test_long_text_is_cut_and_a_flood_to_one_member_is_dropped(
    wserver: ServerHandle, wsim: WeComAPISimulator, http: requests.Session, clock: FakeClock
) -> None:
    token = _token(http, wserver.url)["access_token"]
    _send(http, wserver.url, token, _text("lisi", "长" * 1000))
    assert wsim.sent[0]["truncated"] and len(wsim.sent[0]["content"].encode()) <= 2048
    for i in range(PER_MEMBER_PER_MINUTE + 2):
        assert _send(http, wserver.url, token, _text("zhangsan", f"m{i}"))["errcode"] == 0
    assert len([m for m in wsim.sent if m["touser"] == "zhangsan"]) == PER_MEMBER_PER_MINUTE
    assert [m["content"] for m in wsim.dropped] == [
        f"m{PER_MEMBER_PER_MINUTE}",
        f"m{PER_MEMBER_PER_MINUTE + 1}",
    ]
    clock.advance(61)
    _send(http, wserver.url, token, _text("zhangsan", "later"))
    assert wsim.sent[-1]["content"] == "later"


def test_injected_faults_and_hint_suffix(clock: FakeClock, http: requests.Session) -> None:
    sim = WeComAPISimulator(CORP, SECRET, AGENT, clock=clock, with_rid=True)
    with serve_in_thread(create_wecom_simulator_app(sim)) as server:
        token = _token(http, server.url)["access_token"]
        sim.inject(SEND, -1)
        sim.inject(SEND, 0, http_status=502)
        busy = _send(http, server.url, token, _text("anyone", "x"))
        assert busy["errcode"] == -1 and "more info at" in busy["errmsg"]
        gateway = http.post(server.url + SEND, params={"access_token": token}, json={}, timeout=5)
        assert gateway.status_code == 502
        assert _send(http, server.url, token, _text("anyone", "x"))["errcode"] == 0
        assert [c["errcode"] for c in sim.calls if c["path"] == SEND] == [-1, None, 0]
        dropped = http.get(server.url + "/_sim/dropped", timeout=5).json()
        assert dropped == {"dropped": []}
