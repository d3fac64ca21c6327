"""Access-token semantics: the 5-minute overlap, stable_token reuse, force_refresh."""

from __future__ import annotations

import requests

from app.simulator.api import ServerHandle, WeChatAPISimulator
from tests.simulator.sim_helpers import APP_ID, APP_SECRET, FakeClock, fetch_token


def _send(http: requests.Session, base: str, token: str) -> dict:
    return http.post(
        f"{base}/cgi-bin/message/custom/send",
        params={"access_token": token},
        json={"touser": "oUser1", "msgtype": "text", "text": {"content": "hi"}},
        timeout=5,
    ).json()


def _stable(http: requests.Session, base: str, force: bool = False, **over) -> dict:
    body = {
        "grant_type": "client_credential",
        "appid": APP_ID,
        "secret": APP_SECRET,
        "force_refresh": force,
        **over,
    }
    return http.post(f"{base}/cgi-bin/stable_token", json=body, timeout=5).json()


def test_token_shape_and_headers(server: ServerHandle, http: requests.Session) -> None:
    resp = http.get(
        f"{server.url}/cgi-bin/token",
        params={"grant_type": "client_credential", "appid": APP_ID, "secret": APP_SECRET},
        timeout=5,
    )
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json; encoding=utf-8"
    body = resp.json()
    assert body["expires_in"] == 7200
    assert len(body["access_token"]) > 100


def test_bad_credentials_answer_200_with_errcode(
    server: ServerHandle, http: requests.Session
) -> None:
    url = f"{server.url}/cgi-bin/token"
    base = {"grant_type": "client_credential", "appid": APP_ID, "secret": APP_SECRET}
    cases = [
        ({"appid": "wx_wrong"}, 40013, "invalid appid"),
        ({"secret": "wrong"}, 40125, "invalid appsecret"),
        ({"grant_type": "password"}, 40002, "invalid grant_type"),
    ]
    for override, code, msg in cases:
        resp = http.get(url, params={**base, **override}, timeout=5)
        assert resp.status_code == 200
        assert resp.json() == {"errcode": code, "errmsg": msg}


def test_new_token_leaves_old_one_five_minutes(
    server: ServerHandle, sim: WeChatAPISimulator, clock: FakeClock, http: requests.Session
) -> None:
    old = fetch_token(http, server.url)
    clock.advance(600)
    new = fetch_token(http, server.url)
    assert new != old
    clock.advance(299)
    assert _send(http, server.url, old)["errcode"] == 0
    clock.advance(2)
    assert _send(http, server.url, old) == {
        "errcode": 40001,
        "errmsg": "invalid credential, access_token is invalid or not latest",
    }
    assert _send(http, server.url, new)["errcode"] == 0
    assert sim.token_requests == {"/cgi-bin/token": 2}


def test_token_expires_after_ttl(
    server: ServerHandle, clock: FakeClock, http: requests.Session
) -> None:
    token = fetch_token(http, server.url)
    clock.advance(7199)
    assert _send(http, server.url, token)["errcode"] == 0
    clock.advance(1)
    assert _send(http, server.url, token) == {
        "errcode": 42001,
        "errmsg": "access_token expired",
    }


def test_stable_token_is_reused_until_five_minutes_before_expiry(
    server: ServerHandle, clock: FakeClock, http: requests.Session
) -> None:
    first = _stable(http, server.url)
    assert first["expires_in"] == 7200
    clock.advance(1000)
    again = _stable(http, server.url)
    assert again == {"access_token": first["access_token"], "expires_in": 6200}
    clock.advance(6200 - 300)  # now inside the last five minutes
    rotated = _stable(http, server.url)
    assert rotated["access_token"] != first["access_token"]
    assert rotated["expires_in"] == 7200
    # Both usable during the hand-over, the old one until its own expiry.
    assert _send(http, server.url, first["access_token"])["errcode"] == 0
    clock.advance(300)
    assert _send(http, server.url, first["access_token"])["errcode"] == 42001
    assert _send(http, server.url, rotated["access_token"])["errcode"] == 0


def test_stable_token_is_isolated_from_token(
    server: ServerHandle, clock: FakeClock, http: requests.Session
) -> None:
    stable = _stable(http, server.url)["access_token"]
    fetch_token(http, server.url)
    clock.advance(600)
    fetch_token(http, server.url)
    assert _send(http, server.url, stable)["errcode"] == 0


def test_stable_token_force_refresh(
    server: ServerHandle, clock: FakeClock, http: requests.Session
) -> None:
    first = _stable(http, server.url)["access_token"]
    forced = _stable(http, server.url, force=True)
    assert forced["access_token"] != first
    assert forced["expires_in"] == 7200
    # WeChat ignores a second force within 30 s.
    clock.advance(10)
    assert _stable(http, server.url, force=True)["access_token"] == forced["access_token"]
    clock.advance(289)
    assert _send(http, server.url, first)["errcode"] == 0
    clock.advance(2)
    assert _send(http, server.url, first)["errcode"] == 40001
    clock.advance(30)
    assert _stable(http, server.url, force=True)["access_token"] != forced["access_token"]


def test_stable_token_errors(server: ServerHandle, http: requests.Session) -> None:
    assert _stable(http, server.url, appid="wx_wrong")["errcode"] == 40013
    assert _stable(http, server.url, secret="nope")["errcode"] == 40125
    resp = http.post(f"{server.url}/cgi-bin/stable_token", data=b"not json", timeout=5)
    assert resp.json() == {"errcode": 47001, "errmsg": "data format error"}


def test_expire_all_tokens(
    server: ServerHandle, sim: WeChatAPISimulator, http: requests.Session
) -> None:
    token = fetch_token(http, server.url)
    sim.expire_all_tokens()
    assert _send(http, server.url, token)["errcode"] == 42001
