"""Customer-service send, typing, media and fault injection, over real HTTP."""

from __future__ import annotations

import threading

import pytest
import requests
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from app.simulator.api import ServerHandle, WeChatAPISimulator
from tests.simulator.sim_helpers import APP_ID, APP_SECRET, fetch_token

SEND = "/cgi-bin/message/custom/send"


def _post(http: requests.Session, url: str, token: str | None, body: object) -> dict:
    params = {} if token is None else {"access_token": token}
    return http.post(url, params=params, json=body, timeout=5).json()


def _text(touser: str, content: str) -> dict:
    return {"touser": touser, "msgtype": "text", "text": {"content": content}}


def test_send_text_is_recorded(
    server: ServerHandle, sim: WeChatAPISimulator, http: requests.Session
) -> None:
    token = fetch_token(http, server.url)
    resp = http.post(
        server.url + SEND,
        params={"access_token": token},
        json=_text("oUser1", "您好，订单已发货"),
        timeout=5,
    )
    assert resp.headers["Content-Type"] == "application/json; encoding=utf-8"
    assert resp.json() == {"errcode": 0, "errmsg": "ok"}
    [msg] = sim.sent
    assert msg["touser"] == "oUser1"
    assert msg["msgtype"] == "text"
    assert msg["content"] == "您好，订单已发货"
    assert msg["access_token"] == token
    assert msg["over_limit"] is False


def test_send_token_errors(
    server: ServerHandle, sim: WeChatAPISimulator, http: requests.Session
) -> None:
    url = server.url + SEND
    assert _post(http, url, None, _text("o1", "x")) == {
        "errcode": 41001,
        "errmsg": "access_token missing",
    }
    assert _post(http, url, "not-a-token", _text("o1", "x"))["errcode"] == 40001
    token = fetch_token(http, server.url)
    sim.expire_all_tokens()
    assert _post(http, url, token, _text("o1", "x"))["errcode"] == 42001
    assert sim.sent == []
    assert [c["errcode"] for c in sim.calls if c["path"] == SEND] == [41001, 40001, 42001]


def test_send_body_errors(server: ServerHandle, http: requests.Session) -> None:
    url = server.url + SEND
    token = fetch_token(http, server.url)
    assert _post(http, url, token, _text("", "x")) == {
        "errcode": 40003,
        "errmsg": "invalid openid",
    }
    assert _post(http, url, token, {"touser": "o1", "msgtype": "fax"})["errcode"] == 40008
    assert _post(http, url, token, _text("o1", ""))["errcode"] == 44004


def test_long_text_is_accepted_but_flagged(
    server: ServerHandle, sim: WeChatAPISimulator, http: requests.Session
) -> None:
    token = fetch_token(http, server.url)
    long_text = "长" * 700  # 2100 bytes in UTF-8
    assert _post(http, server.url + SEND, token, _text("o1", long_text))["errcode"] == 0
    [msg] = sim.sent
    assert msg["bytes"] == 2100
    assert msg["over_limit"] is True


def test_other_msgtypes_are_recorded(
    server: ServerHandle, sim: WeChatAPISimulator, http: requests.Session
) -> None:
    token = fetch_token(http, server.url)
    body = {"touser": "o1", "msgtype": "image", "image": {"media_id": "M1"}}
    assert _post(http, server.url + SEND, token, body)["errcode"] == 0
    [msg] = sim.sent
    assert msg["msgtype"] == "image"
    assert msg["content"] is None
    assert msg["payload"]["image"] == {"media_id": "M1"}


def test_typing(server: ServerHandle, sim: WeChatAPISimulator, http: requests.Session) -> None:
    url = server.url + "/cgi-bin/message/custom/typing"
    token = fetch_token(http, server.url)
    assert _post(http, url, token, {"touser": "o1", "command": "Typing"})["errcode"] == 0
    assert _post(http, url, token, {"touser": "o1", "command": "CancelTyping"})["errcode"] == 0
    assert _post(http, url, token, {"touser": "o1", "command": "Dance"})["errcode"] == 47001
    assert [t["command"] for t in sim.typing] == ["Typing", "CancelTyping"]


def test_fault_sequence_then_success(
    server: ServerHandle, sim: WeChatAPISimulator, http: requests.Session
) -> None:
    token = fetch_token(http, server.url)
    sim.inject(SEND, -1)
    sim.inject(SEND, 45047, times=2)
    url = server.url + SEND
    results = [_post(http, url, token, _text("o1", f"part {i}")) for i in range(4)]
    assert results[0] == {"errcode": -1, "errmsg": "system error"}
    assert [r["errcode"] for r in results] == [-1, 45047, 45047, 0]
    assert results[1]["errmsg"] == "out of response count limit"
    assert [m["content"] for m in sim.sent] == ["part 3"]
    calls = [c for c in sim.calls if c["path"] == SEND]
    assert [c["injected"] for c in calls] == [True, True, True, False]
    assert sim.pending_faults == []


def test_fault_custom_errmsg_and_http_error(
    server: ServerHandle, sim: WeChatAPISimulator, http: requests.Session
) -> None:
    token = fetch_token(http, server.url)
    sim.inject(SEND, 40164, errmsg="invalid ip 1.2.3.4, not in whitelist")
    sim.inject(SEND, 0, http_status=502)
    url = server.url + SEND
    assert _post(http, url, token, _text("o1", "a")) == {
        "errcode": 40164,
        "errmsg": "invalid ip 1.2.3.4, not in whitelist",
    }
    resp = http.post(url, params={"access_token": token}, json=_text("o1", "b"), timeout=5)
    assert resp.status_code == 502
    assert resp.headers["Content-Type"].startswith("text/html")
    assert _post(http, url, token, _text("o1", "c"))["errcode"] == 0


def test_fault_on_token_endpoint_is_counted(
    server: ServerHandle, sim: WeChatAPISimulator, http: requests.Session
) -> None:
    sim.inject("/cgi-bin/token", -1)
    resp = http.get(
        f"{server.url}/cgi-bin/token",
        params={"grant_type": "client_credential", "appid": APP_ID, "secret": APP_SECRET},
        timeout=5,
    )
    assert resp.json()["errcode"] == -1
    assert fetch_token(http, server.url)
    assert sim.token_requests == {"/cgi-bin/token": 2}


def test_delay_fault_makes_a_client_time_out(
    server: ServerHandle, sim: WeChatAPISimulator, http: requests.Session
) -> None:
    token = fetch_token(http, server.url)
    sim.inject(SEND, 0, delay=0.5)
    with pytest.raises(requests.Timeout):
        http.post(
            server.url + SEND,
            params={"access_token": token},
            json=_text("o1", "slow"),
            timeout=0.1,
        )
    # WeChat still processed it: a client that retries now sends a duplicate.
    assert [m["content"] for m in sim.wait_for_sent(1, timeout=5)] == ["slow"]


def test_inject_validates() -> None:
    sim = WeChatAPISimulator("a", "b")
    with pytest.raises(ValueError):
        sim.inject(SEND, -1, times=0)
    with pytest.raises(ValueError):
        sim.inject("", -1)


def test_media_get(server: ServerHandle, sim: WeChatAPISimulator, http: requests.Session) -> None:
    sim.add_media("MEDIA_1", b"\xff\xd8jpegbytes", "image/jpeg")
    token = fetch_token(http, server.url)
    url = f"{server.url}/cgi-bin/media/get"
    resp = http.get(url, params={"access_token": token, "media_id": "MEDIA_1"}, timeout=5)
    assert resp.status_code == 200
    assert resp.content == b"\xff\xd8jpegbytes"
    assert resp.headers["Content-Type"] == "image/jpeg"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="MEDIA_1.jpg"'
    unknown = http.get(url, params={"access_token": token, "media_id": "nope"}, timeout=5)
    assert unknown.json() == {"errcode": 40007, "errmsg": "invalid media_id"}
    missing = http.get(url, params={"access_token": token}, timeout=5)
    assert missing.json()["errcode"] == 41006
    no_token = http.get(url, params={"media_id": "MEDIA_1"}, timeout=5)
    assert no_token.json()["errcode"] == 41001


def test_media_get_voice_and_video(
    server: ServerHandle, sim: WeChatAPISimulator, http: requests.Session
) -> None:
    sim.add_media("VOICE_1", b"#!AMR\n...", "audio/amr")
    sim.add_media("VIDEO_1", b"mp4bytes", "video/mp4")
    token = fetch_token(http, server.url)
    url = f"{server.url}/cgi-bin/media/get"
    voice = http.get(url, params={"access_token": token, "media_id": "VOICE_1"}, timeout=5)
    assert voice.headers["Content-Disposition"] == 'attachment; filename="VOICE_1.amr"'
    video = http.get(url, params={"access_token": token, "media_id": "VIDEO_1"}, timeout=5)
    video_url = video.json()["video_url"]
    assert http.get(video_url, timeout=5).content == b"mp4bytes"


def test_wait_for_sent_sees_a_background_send(
    server: ServerHandle, sim: WeChatAPISimulator, http: requests.Session
) -> None:
    token = fetch_token(http, server.url)

    def later() -> None:
        with requests.Session() as s:
            _post(s, server.url + SEND, token, _text("o1", "async answer"))

    worker = threading.Thread(target=later)
    worker.start()
    sent = sim.wait_for_sent(1, timeout=5)
    worker.join()
    assert sent[0]["content"] == "async answer"


def test_wait_for_sent_times_out_with_what_it_has(sim: WeChatAPISimulator) -> None:
    with pytest.raises(TimeoutError, match="expected 1 sent message"):
        sim.wait_for_sent(1, timeout=0.05)


def test_reset_clears_everything(
    server: ServerHandle, sim: WeChatAPISimulator, http: requests.Session
) -> None:
    token = fetch_token(http, server.url)
    _post(http, server.url + SEND, token, _text("o1", "x"))
    sim.inject(SEND, -1)
    sim.reset()
    assert (sim.sent, sim.calls, sim.token_requests, sim.pending_faults) == ([], [], {}, [])
    assert _post(http, server.url + SEND, token, _text("o1", "x"))["errcode"] == 40001


def test_unknown_api_is_recorded(
    server: ServerHandle, sim: WeChatAPISimulator, http: requests.Session
) -> None:
    resp = http.post(f"{server.url}/cgi-bin/message/mass/send", json={}, timeout=5)
    assert resp.status_code == 404
    assert sim.calls[-1]["path"] == "/cgi-bin/message/mass/send"


class _SimWeChatClient(WeChatClient):
    """wechatpy pointed at the simulator; its token URL ignores API_BASE_URL."""

    def __init__(self, base: str) -> None:
        self.API_BASE_URL = f"{base}/cgi-bin/"
        super().__init__(APP_ID, APP_SECRET, auto_retry=False)

    def fetch_access_token(self) -> dict:
        params = {"grant_type": "client_credential", "appid": APP_ID, "secret": APP_SECRET}
        return self._fetch_access_token(url=f"{self.API_BASE_URL}token", params=params)


def test_wechatpy_client_against_simulator(server: ServerHandle, sim: WeChatAPISimulator) -> None:
    client = _SimWeChatClient(server.url)
    assert client.message.send_text("oUser9", "来自 wechatpy")["errcode"] == 0
    assert sim.sent[0]["content"] == "来自 wechatpy"
    sim.add_media("M9", b"img", "image/png")
    assert client.media.download("M9").content == b"img"
    sim.inject(SEND, 45015)
    with pytest.raises(WeChatClientException) as err:
        client.message.send_text("oUser9", "too late")
    assert err.value.errcode == 45015
