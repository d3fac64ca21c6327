"""The real /wecom endpoint (app factory, SQLite store, embedded broker): WeCom's official
WXBizMsgCrypt vectors, every documented WeCom message, encrypted passive replies, the
simulator's callback client and CLI over real HTTP, and hostile input."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from app.channels.wechat.security import sign
from app.extensions import db
from app.simulator.server import serve_in_thread
from app.simulator.wecom_callback import WeComCallbackClient
from app.simulator.wecom_cli import wecom
from app.store import InboundMessage
from tests.integration.test_wechat_callback import _app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wechat" / "work"

# WeCom's official WXBizMsgCrypt sample (its callback documentation and SDK samples).
OFFICIAL = {
    "wecom_token": "QDG6eK",
    "wecom_aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
    "wecom_corp_id": "wx5823bf96d3bd56c7",
    "wecom_agent_id": "218",
    "wecom_secret": "unused-here",
}
VERIFY = {
    "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
    "timestamp": "1409659589",
    "nonce": "263014780",
    "echostr": "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO"
    "+FZXvnaqQ==",
}
VERIFY_PLAIN = "1616140317555161061"
REQ = {"msg_signature": "477715d11cdb4164915debcba66cb864d751f3e6"}
REQ.update(timestamp="1409659813", nonce="1372623149")
REQ_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3Qczc"
    "dCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLj"
    "vd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMn"
    "vw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k"
    "22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2Yoy"
    "yH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
)

# A configured app of our own for everything that is not an official vector.
CORP, AGENT, TOKEN = "ww0123456789abcdef", "1000002", "wecomtoken9"
AES = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
WECOM = {
    "wecom_token": TOKEN,
    "wecom_aes_key": AES,
    "wecom_corp_id": CORP,
    "wecom_agent_id": AGENT,
    "wecom_secret": "s3cret",
}


@pytest.fixture()
def app(tmp_path: Path) -> Flask:
    return _app(tmp_path, **WECOM)


@pytest.fixture()
def signer() -> WeComCallbackClient:
    return WeComCallbackClient("http://x/wecom", TOKEN, CORP, AES, AGENT)


def _post(app: Flask, signer: WeComCallbackClient, xml: str, **kwargs: object):  # noqa: ANN201
    prepared = signer.prepare(xml, **kwargs)
    return app.test_client().post("/wecom", query_string=prepared.params, data=prepared.body)


def _rows(app: Flask) -> list[InboundMessage]:
    with app.app_context():
        return list(db.session.scalars(db.select(InboundMessage).order_by(InboundMessage.id)))


def test_official_url_check_vector_returns_the_plaintext(tmp_path: Path) -> None:
    app = _app(tmp_path, wechat_timestamp_window_s=0, **OFFICIAL)
    resp = app.test_client().get("/wecom", query_string=VERIFY)
    assert resp.status_code == 200
    assert resp.get_data(as_text=True) == VERIFY_PLAIN
    bad = dict(VERIFY, msg_signature="0" * 40)
    assert app.test_client().get("/wecom", query_string=bad).status_code == 403


def test_official_message_vector_is_stored_once(tmp_path: Path) -> None:
    app = _app(tmp_path, wechat_timestamp_window_s=0, **OFFICIAL)
    body = (
        f"<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>"
        f"<Encrypt><![CDATA[{REQ_ENCRYPT}]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>"
    )
    for _ in range(3):  # WeCom's three tries of one MsgId
        resp = app.test_client().post("/wecom", query_string=REQ, data=body)
        assert resp.status_code == 200 and resp.get_data(as_text=True) == ""
    assert [(r.channel, r.dedup_key, r.customer, r.content, r.status) for r in _rows(app)] == [
        ("wecom", "4561255354251345929", "mycreate", "hello", "received")
    ]


def _documented_messages() -> list[str]:
    rows = [line.split("\t") for line in (FIXTURES / "index.tsv").read_text().splitlines()]
    return [r[0] for r in rows if len(r) > 3 and r[3]]


@pytest.mark.parametrize("fixture", _documented_messages())
def test_every_documented_wecom_message_is_acknowledged(tmp_path: Path, fixture: str) -> None:
    # The samples are addressed to AgentID 1: an app of that id receives them.
    app = _app(tmp_path, **dict(WECOM, wecom_agent_id="1"))
    signer = WeComCallbackClient("http://x", TOKEN, CORP, AES, 1)
    resp = _post(app, signer, (FIXTURES / fixture).read_text())
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_data(as_text=True)
    assert body == "" or "<Encrypt>" in body


def test_passive_replies_are_encrypted_for_the_member(
    app: Flask, signer: WeComCallbackClient
) -> None:
    welcome = signer.decrypt_reply(
        _post(app, signer, signer.event("zhangsan", "subscribe")).get_data(as_text=True)
    )
    assert welcome is not None and "欢迎关注" in welcome["Content"]
    assert welcome["ToUserName"] == "zhangsan" and welcome["FromUserName"] == CORP
    assert welcome["AgentID"] == AGENT
    handoff = signer.decrypt_reply(
        _post(app, signer, signer.text("zhangsan", "转人工", msg_id="9")).get_data(as_text=True)
    )
    assert handoff is not None and "人工客服" in handoff["Content"]
    assert [(r.msg_type, r.status) for r in _rows(app)] == [
        ("event:subscribe", "answered"),
        ("text", "handoff"),
    ]


def test_simulator_client_and_cli_against_the_running_endpoint(app: Flask) -> None:
    with serve_in_thread(app) as server:
        url = server.url + "/wecom"
        client = WeComCallbackClient(url, TOKEN, CORP, AES, AGENT)
        check = client.verify_url("8842716633012")
        assert check.status_code == 200 and check.text == "8842716633012"
        delivery = client.deliver(client.image("lisi", "http://x/p.jpg", "media1", msg_id="77"))
        # A picture is queued for OCR and answered later through message/send.
        assert delivery.ok and delivery.reply is None
        common = ["--url", url, "--token", TOKEN, "--corp-id", CORP, "--aes-key", AES]
        common += ["--agent-id", AGENT]
        verified = CliRunner().invoke(wecom, ["verify", *common])
        assert verified.exit_code == 0, verified.output
        said = CliRunner().invoke(wecom, ["say", *common, "--from-user", "wangwu", "发票怎么开"])
        assert said.exit_code == 0, said.output
        assert '"ok": true' in said.output
    assert [(r.customer, r.content) for r in _rows(app) if r.msg_type == "text"] == [
        ("wangwu", "发票怎么开")
    ]
    assert [(r.customer, r.media_id) for r in _rows(app) if r.msg_type == "image"] == [
        ("lisi", "media1")
    ]


def test_unconfigured_wecom_is_503(tmp_path: Path) -> None:
    app = _app(tmp_path)
    resp = app.test_client().get("/wecom", query_string=VERIFY)
    assert resp.status_code == 503
    assert "WECOM_TOKEN" in resp.get_json()["error"]


def test_hostile_input_is_4xx_and_creates_nothing(
    tmp_path: Path, signer: WeComCallbackClient
) -> None:
    app = _app(tmp_path, wechat_max_body_bytes=4096, **WECOM)
    other_corp = WeComCallbackClient("http://x", TOKEN, "wwOTHERCORP000000", AES, AGENT)
    other_agent = WeComCallbackClient("http://x", TOKEN, CORP, AES, "1000003")
    wrong_token = WeComCallbackClient("http://x", "wrongtoken", CORP, AES, AGENT)
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><xml><Content>&b;</Content></xml>'
    )
    xxe = '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Content>&e;</Content></xml>'
    client = app.test_client()
    text = signer.text("mallory", "hi")
    cases = {
        "bad signature": (_post(app, wrong_token, text), 403),
        "wrong CorpID": (_post(app, other_corp, text), 400),
        "wrong AgentID": (_post(app, other_agent, text), 400),
        "replayed timestamp": (_post(app, signer, text, timestamp=1409659813), 403),
        # Hostile XML sealed with the right key and signature: refused after decryption.
        "xxe inside": (_post(app, signer, xxe), 400),
        "billion laughs inside": (_post(app, signer, laughs), 400),
        "missing fields": (_post(app, signer, "<xml><MsgType>text</MsgType></xml>"), 400),
        "oversized": (
            client.post(
                "/wecom",
                query_string=signer.prepare(text).params,
                data="<xml><Encrypt>" + "A" * 5000 + "</Encrypt></xml>",
            ),
            413,
        ),
        "xxe envelope": (
            client.post("/wecom", query_string=signer.prepare(text).params, data=xxe),
            400,
        ),
    }
    unsigned = dict(signer.prepare(text).params)
    unsigned["msg_signature"] = sign(TOKEN, unsigned["timestamp"], unsigned["nonce"], "")
    cases["empty echostr"] = (client.get("/wecom", query_string=unsigned), 400)
    for label, encrypt in (("bad base64", "@@@not base64@@@"), ("bad padding", "YWJj")):
        params = dict(signer.prepare(text).params)
        params["msg_signature"] = sign(TOKEN, params["timestamp"], params["nonce"], encrypt)
        body = f"<xml><ToUserName>{CORP}</ToUserName><Encrypt>{encrypt}</Encrypt></xml>"
        cases[label] = (client.post("/wecom", query_string=params, data=body), 400)
        echo = dict(params, echostr=encrypt)
        cases[f"{label} echostr"] = (client.get("/wecom", query_string=echo), 400)
    for label, (resp, status) in cases.items():
        assert resp.status_code == status, (label, resp.status_code, resp.get_data(as_text=True))
        assert resp.get_json()["error"], label
    assert _rows(app) == []
