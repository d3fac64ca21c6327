"""The real /wechat endpoint (app factory, SQLite store, embedded broker) against every
message type of WeChat's documentation, safe mode, and hostile input."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.extensions import db
from app.messages.routing import VOICE_UNCLEAR
from app.settings import load_settings
from app.simulator.callback_client import CallbackClient
from app.store import InboundMessage
from tests.support import WECHAT, free_port

# WeChat documentation samples as collected in wechatpy's tests (MIT, see LICENSE there).
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wechat" / "mp"
OFFICIAL = {
    "token": "spamtest",
    "aes": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "app_id": "wx2c2769f8efd9abc2",
}


def _app(tmp_path: Path, **overrides: object) -> Flask:
    values: dict[str, object] = {
        "data_dir": tmp_path,
        "milvus_uri": f"http://127.0.0.1:{free_port()}",
        "wechat_token": WECHAT["token"],
        "wechat_app_id": WECHAT["app_id"],
        "wechat_app_secret": WECHAT["secret"],
        "wechat_menu_replies": {"HOURS": "客服时间：每天9:00-21:00"},
    }
    values.update(overrides)
    app = create_app(load_settings(**values))
    with app.app_context():
        db.create_all()
    return app


@pytest.fixture()
def app(tmp_path: Path) -> Flask:
    return _app(tmp_path)


class Wechat:
    """Signs like WeChat, posts through Flask's test client to the real app."""

    def __init__(self, client: FlaskClient, signer: CallbackClient) -> None:
        self.client, self.signer = client, signer

    def post(self, xml: str, **kwargs: object):  # noqa: ANN201
        prepared = self.signer.prepare(xml, **kwargs)
        return self.client.post("/wechat", query_string=prepared.params, data=prepared.body)


@pytest.fixture()
def wechat(app: Flask) -> Wechat:
    return Wechat(
        app.test_client(), CallbackClient("http://x/wechat", WECHAT["token"], WECHAT["app_id"])
    )


def _rows(app: Flask) -> list[InboundMessage]:
    with app.app_context():
        return list(db.session.scalars(db.select(InboundMessage).order_by(InboundMessage.id)))


def _reply(resp) -> str:  # noqa: ANN001
    return resp.get_data(as_text=True)


def _documented_messages() -> list[str]:
    """Fixtures with a message type (the others are encrypted envelopes, tested below)."""
    rows = [line.split("\t") for line in (FIXTURES / "index.tsv").read_text().splitlines()]
    return [r[0] for r in rows if len(r) > 3 and r[3]]


@pytest.mark.parametrize("fixture", _documented_messages())
def test_every_documented_message_is_acknowledged(wechat: Wechat, fixture: str) -> None:
    resp = wechat.post((FIXTURES / fixture).read_text())
    assert resp.status_code == 200, _reply(resp)
    body = _reply(resp)
    assert body == "" or body.startswith("<xml>")


def test_text_is_queued_once_for_three_tries(app: Flask, wechat: Wechat) -> None:
    xml = wechat.signer.text("o_user", "退款多久到账？", msg_id="777")
    for _ in range(3):
        assert _reply(wechat.post(xml)) == ""
    rows = _rows(app)
    assert [(r.dedup_key, r.status, r.content) for r in rows] == [
        ("777", "received", "退款多久到账？")
    ]


def test_voice_uses_recognition_else_queues_the_audio_to_be_heard(
    app: Flask, wechat: Wechat
) -> None:
    """Recognition is the question; without it the worker transcribes the audio
    (tests/e2e/test_wechat_delivery.py), so its MediaId and Format are kept."""
    assert _reply(wechat.post(wechat.signer.voice("o_v", "m1", "多久能退款", msg_id="1"))) == ""
    resp = wechat.post(wechat.signer.voice("o_v", "m2", None, msg_id="2", audio_format="speex"))
    assert _reply(resp) == ""
    assert [(r.status, r.content, r.media_id, r.media_format) for r in _rows(app)] == [
        ("received", "多久能退款", "", ""),
        ("received", "", "m2", "speex"),
    ]


def test_voice_without_recognition_asks_to_type_when_transcription_is_off(
    tmp_path: Path,
) -> None:
    app = _app(tmp_path, speech_transcribe=False)
    wechat = Wechat(
        app.test_client(), CallbackClient("http://x/wechat", WECHAT["token"], WECHAT["app_id"])
    )
    resp = wechat.post(wechat.signer.voice("o_v", "m2", None, msg_id="2"))
    assert VOICE_UNCLEAR in _reply(resp)
    resp = wechat.post(wechat.signer.voice("o_v", "m3", "", msg_id="3"))
    assert VOICE_UNCLEAR in _reply(resp)
    assert [(r.status, r.content) for r in _rows(app)] == [("answered", ""), ("answered", "")]


def test_subscribe_gets_the_welcome_and_menu_clicks_their_reply(wechat: Wechat) -> None:
    assert "欢迎关注" in _reply(wechat.post(wechat.signer.event("o_s", "subscribe")))
    assert "9:00-21:00" in _reply(wechat.post(wechat.signer.event("o_s", "CLICK", "HOURS")))
    assert _reply(wechat.post(wechat.signer.event("o_s", "CLICK", "UNKNOWN"))) == ""


def test_asking_for_a_person_hands_off(app: Flask, wechat: Wechat) -> None:
    resp = wechat.post(wechat.signer.text("o_h", "转人工！", msg_id="10"))
    assert "<MsgType><![CDATA[transfer_customer_service]]></MsgType>" in _reply(resp)
    assert _reply(wechat.post(wechat.signer.text("o_h", "人工智能能帮我退货吗", msg_id="11"))) == ""
    assert [r.status for r in _rows(app)] == ["handoff", "received"]


def test_official_safe_mode_vector_through_the_endpoint(tmp_path: Path) -> None:
    app = _app(
        tmp_path,
        wechat_token=OFFICIAL["token"],
        wechat_aes_key=OFFICIAL["aes"],
        wechat_app_id=OFFICIAL["app_id"],
        wechat_timestamp_window_s=0,
    )
    from tests.unit.test_security import ENCRYPT

    resp = app.test_client().post(
        "/wechat",
        query_string={
            "signature": "ignored-in-aes-mode-but-checked",
            "timestamp": "1409735669",
            "nonce": "1320562132",
            "encrypt_type": "aes",
            "msg_signature": "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
        },
        data=f"<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>"
        f"<Encrypt><![CDATA[{ENCRYPT}]]></Encrypt></xml>",
    )
    # WeChat signs the query too; the vector has no plain signature, so this must fail...
    assert resp.status_code == 403
    # ...and with WeChat's real plain signature for these values it is accepted.
    from app.channels.wechat.security import sign

    resp = app.test_client().post(
        "/wechat",
        query_string={
            "signature": sign(OFFICIAL["token"], "1409735669", "1320562132"),
            "timestamp": "1409735669",
            "nonce": "1320562132",
            "encrypt_type": "aes",
            "msg_signature": "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
        },
        data=f"<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>"
        f"<Encrypt><![CDATA[{ENCRYPT}]]></Encrypt></xml>",
    )
    assert resp.status_code == 200
    assert [(r.dedup_key, r.content) for r in _rows(app)] == [("6054768590064713728", "abcdteT")]


@pytest.mark.parametrize("mode", ["safe", "compat"])
def test_encrypted_modes_round_trip_with_encrypted_passive_replies(
    tmp_path: Path, mode: str
) -> None:
    app = _app(tmp_path, wechat_aes_key=OFFICIAL["aes"])
    signer = CallbackClient(
        "http://x/wechat", WECHAT["token"], WECHAT["app_id"], aes_key=OFFICIAL["aes"], mode=mode
    )
    wechat = Wechat(app.test_client(), signer)
    resp = wechat.post(signer.event("o_e", "subscribe"))
    assert resp.status_code == 200
    reply = signer.decrypt_reply(_reply(resp))
    assert reply is not None and "欢迎关注" in reply["Content"]
    assert _reply(wechat.post(signer.text("o_e", "发票怎么开", msg_id="55"))) == ""
    assert [r.content for r in _rows(app) if r.dedup_key == "55"] == ["发票怎么开"]


def test_required_encryption_refuses_plaintext_and_takes_both_encrypted_modes(
    tmp_path: Path,
) -> None:
    app = _app(tmp_path, wechat_aes_key=OFFICIAL["aes"], wechat_require_encryption=True)
    plain = Wechat(
        app.test_client(), CallbackClient("http://x/wechat", WECHAT["token"], WECHAT["app_id"])
    )
    # Correctly signed with the Token, but not encrypted: refused, nothing stored.
    resp = plain.post(plain.signer.text("o_p", "退款多久到账？", msg_id="901"))
    assert resp.status_code == 403, _reply(resp)
    assert "WECHAT_REQUIRE_ENCRYPTION" in resp.get_json()["error"]
    assert _rows(app) == []
    for msg_id, mode in (("902", "safe"), ("903", "compat")):
        signer = CallbackClient(
            "http://x/wechat", WECHAT["token"], WECHAT["app_id"], aes_key=OFFICIAL["aes"], mode=mode
        )
        resp = Wechat(app.test_client(), signer).post(signer.text("o_p", "发票", msg_id=msg_id))
        assert resp.status_code == 200, (mode, _reply(resp))
    assert [r.dedup_key for r in _rows(app)] == ["902", "903"]
    # WeChat's URL check (GET) is plain in every mode and still answered.
    check = plain.signer.prepare("<xml/>").params | {"echostr": "hello"}
    assert _reply(app.test_client().get("/wechat", query_string=check)) == "hello"


def test_hostile_input_is_4xx_and_creates_nothing(tmp_path: Path) -> None:
    app = _app(tmp_path, wechat_aes_key=OFFICIAL["aes"], wechat_max_body_bytes=4096)
    plain = Wechat(
        app.test_client(), CallbackClient("http://x/wechat", WECHAT["token"], WECHAT["app_id"])
    )
    safe_signer = CallbackClient(
        "http://x/wechat",
        WECHAT["token"],
        "wxOTHERAPPID00000",
        aes_key=OFFICIAL["aes"],
        mode="safe",
    )
    safe = Wechat(app.test_client(), safe_signer)
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><xml><Content>&b;</Content></xml>'
    )
    xxe = '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Content>&e;</Content></xml>'
    cases = {
        "oversized": (plain.post("<xml><Content>" + "字" * 5000 + "</Content></xml>"), 413),
        "billion laughs": (plain.post(laughs), 400),
        "xxe": (plain.post(xxe), 400),
        "wrong appid": (safe.post(safe_signer.text("o_x", "hi")), 400),
        "replayed timestamp": (
            plain.post(plain.signer.text("o_x", "hi"), timestamp=1409735669),
            403,
        ),
        "missing fields": (plain.post("<xml><MsgType>text</MsgType></xml>"), 400),
    }
    bad_b64 = safe_signer.prepare(safe_signer.text("o_x", "hi"))
    for label, encrypt in (("bad base64", "@@@not base64@@@"), ("bad padding", "YWJj")):
        from app.channels.wechat.security import sign

        params = dict(bad_b64.params)
        params["msg_signature"] = sign(
            WECHAT["token"], params["timestamp"], params["nonce"], encrypt
        )
        body = f"<xml><ToUserName>gh</ToUserName><Encrypt>{encrypt}</Encrypt></xml>"
        cases[label] = (app.test_client().post("/wechat", query_string=params, data=body), 400)
    for label, (resp, status) in cases.items():
        assert resp.status_code == status, (label, resp.status_code, _reply(resp))
        assert resp.get_json()["error"], label
    assert _rows(app) == []
