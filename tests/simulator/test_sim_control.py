"""Steering a simulator from another process: /_sim/ routes, RemoteSimulator, CLI."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from app.simulator.api import ServerHandle, WeChatAPISimulator
from app.simulator.remote import RemoteSimulator
from tests.simulator.sim_helpers import fetch_token

SEND = "/cgi-bin/message/custom/send"
REPO = Path(__file__).resolve().parents[2]


def _send(http: requests.Session, base: str, token: str, content: str) -> dict:
    body = {"touser": "o1", "msgtype": "text", "text": {"content": content}}
    return http.post(base + SEND, params={"access_token": token}, json=body, timeout=5).json()


def test_sim_http_routes(
    server: ServerHandle, sim: WeChatAPISimulator, http: requests.Session
) -> None:
    base = server.url
    resp = http.post(f"{base}/_sim/inject", json={"path_suffix": SEND, "errcode": 48001})
    assert resp.json()["ok"] is True
    assert http.post(f"{base}/_sim/inject", json={"errcode": 1}).status_code == 400

    token = fetch_token(http, base)
    assert _send(http, base, token, "a") == {"errcode": 48001, "errmsg": "api unauthorized"}
    assert _send(http, base, token, "你好")["errcode"] == 0

    sent = http.get(f"{base}/_sim/sent").json()["sent"]
    assert [m["content"] for m in sent] == ["你好"]
    calls = http.get(f"{base}/_sim/calls").json()
    assert [c["errcode"] for c in calls["calls"]] == [0, 48001, 0]
    assert calls["token_requests"] == {"/cgi-bin/token": 1}

    media = {"media_id": "M1", "data_base64": base64.b64encode(b"abc").decode()}
    assert http.post(f"{base}/_sim/media", json=media).json()["ok"] is True
    got = http.get(f"{base}/cgi-bin/media/get", params={"access_token": token, "media_id": "M1"})
    assert got.content == b"abc"

    form = {"media_id": "M2", "content_type": "audio/amr"}
    files = {"media": ("v.amr", b"#!AMR", "audio/amr")}
    assert http.post(f"{base}/_sim/media", data=form, files=files).json()["ok"] is True
    assert sim.raw_media("M2").data == b"#!AMR"

    http.post(f"{base}/_sim/expire_tokens")
    assert _send(http, base, token, "x")["errcode"] == 42001
    http.post(f"{base}/_sim/reset")
    assert http.get(f"{base}/_sim/sent").json() == {"sent": []}


def test_wait_sent_long_poll(server: ServerHandle, http: requests.Session) -> None:
    resp = http.get(f"{server.url}/_sim/wait_sent", params={"n": 1, "timeout": 0.05})
    assert resp.status_code == 408
    token = fetch_token(http, server.url)
    _send(http, server.url, token, "done")
    resp = http.get(f"{server.url}/_sim/wait_sent", params={"n": 1, "timeout": 5})
    assert resp.json()["sent"][0]["content"] == "done"


def test_remote_simulator_mirrors_local_api(server: ServerHandle, http: requests.Session) -> None:
    remote = RemoteSimulator(server.url)
    remote.inject(SEND, -1, times=1)
    remote.add_media("M1", b"bytes", "image/png")
    token = remote.issue_token()
    assert _send(http, server.url, token, "a")["errcode"] == -1
    assert _send(http, server.url, token, "b")["errcode"] == 0
    assert [m["content"] for m in remote.wait_for_sent(1, timeout=5)] == ["b"]
    assert remote.token_requests == {}  # issue_token is a back door, not counted
    assert [c["errcode"] for c in remote.calls] == [-1, 0]
    with pytest.raises(TimeoutError):
        remote.wait_for_sent(2, timeout=0.05)
    with pytest.raises(ValueError):
        remote.inject(SEND, -1, times=0)
    remote.reset()
    assert remote.sent == []


def test_cli_serves_simulator_in_another_process() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.simulator",
            "simulator",
            "--port",
            "0",
            "--app-id",
            "wxcli",
            "--app-secret",
            "s",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()  # blocks until the port is bound
        key, _, base = line.partition("=")
        assert key == "WECHAT_API_BASE_URL"
        resp = requests.get(
            f"{base}/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": "wxcli", "secret": "s"},
            timeout=5,
        )
        token = resp.json()["access_token"]
        with requests.Session() as http:
            assert _send(http, base, token, "跨进程")["errcode"] == 0
        assert RemoteSimulator(base).wait_for_sent(1, timeout=5)[0]["content"] == "跨进程"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0
