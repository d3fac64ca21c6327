"""CallbackClient: WeChat's signing, encryption, message shapes and retry rule."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from flask import Flask, request
from wechatpy.crypto import WeChatCrypto
from wechatpy.crypto.base import BasePrpCrypto
from wechatpy.replies import create_reply
from wechatpy.utils import check_signature

from app.simulator import messages
from app.simulator.api import ServerHandle, serve_in_thread
from app.simulator.callback_client import CallbackClient, InvalidReply, wechat_signature

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wechat" / "mp"

# Official WXBizMsgCrypt sample (shared/wechat/test-vectors.md).
TOKEN = "spamtest"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APP_ID = "wx2c2769f8efd9abc2"
TS, NONCE = "1409735669", "1320562132"
GET_SIGNATURE = "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a"
REQ_MSG_SIGNATURE = "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
REQ_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6"
    "F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T33"
    "2jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCg"
    "avjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6Oewp"
    "usjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)
REPLY_TS, REPLY_PREFIX = "1415979516", "HLFOQjbkfgUh46s8"
REPLY_MSG_SIGNATURE = "096d8cda45e4678ca23460f6b8cd281b3faf1fc3"
REPLY_ENCRYPT = (
    "3kKZ++U5ocvIF8dAHPct7xvUqEv6vplhuzA8Vwj7OnVcBu9fdmbbI41zclSfKqP6/bdYAxuE3x8jse43ImHaV07s"
    "iJF473TsXhl8Yt8task0n9KC7BDA73mFTwlhYvuCIFnU6wFlzOkHyM5Bh2qpOHYk5nSMRyUG4BwmXpxq8TvLgJV1"
    "jj2DXdGW4qdknGLfJgDH5sCPJeBzNC8j8KtrJFxmG7qIwKHn3H5sqBf6UqhXFdbLuTWL3jwE7yMLhzOmiHi/MX/Z"
    "sVQ7sMuBiV6bW0wkgielESC3yNUPo4q/RMAFEH0fRLr76BR5Ct0nUbf9PdClc0RdlYcztyOs54X/KLbYRNCQ2kXx"
    "mJYL6ekdNe70PCAReIEfXEp+pGpry4ss8bD6LKAtNvBJUwHshZe6sbf+fOiDiuKEqp1wdQLmgN+8nX62LklySWr8"
    "QrNCpsmKClxco0kbVYNX/QVh5yd0UA1sAqIn6baZ9G+Z/OXG+Q4n9lUuzLprLhDBPaCvXm4N14oqXNcw7tqU2xfh"
    "YNIDaD72djyIc/4eyAi2ZsJ+3hb+jgiISR5WVveRWYYqGZGTW3u+27JiXEo0fs3DQDbGVIcYxaMgU/RRIDdXzZSF"
    "cf6Z1azjzCDyV9FFEsicghHn"
)


def _encrypted_body(encrypt: str, signature: str, ts: str, nonce: str) -> str:
    return (
        f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt>"
        f"<MsgSignature><![CDATA[{signature}]]></MsgSignature>"
        f"<TimeStamp>{ts}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
    )


def _random_prefix(encrypt: str) -> str:
    """The 16 random bytes WeChat put in front of the sample plaintext."""
    key = base64.b64decode(AES_KEY + "=")
    plain = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    return (plain.update(base64.b64decode(encrypt)) + plain.finalize())[:16].decode()


# --- the official vectors ------------------------------------------------------------


def test_get_signature_vector() -> None:
    assert wechat_signature(TOKEN, TS, NONCE) == GET_SIGNATURE


def test_decrypts_official_request_vector() -> None:
    client = CallbackClient("http://unused", TOKEN, APP_ID, aes_key=AES_KEY, mode="safe")
    msg = client.decrypt_reply(_encrypted_body(REQ_ENCRYPT, REQ_MSG_SIGNATURE, TS, NONCE))
    assert msg is not None
    assert msg["Content"] == "abcdteT"
    assert msg["MsgId"] == "6054768590064713728"
    assert msg["FromUserName"] == "oyORnuP8q7ou2gfYjqLzSIWZf0rs"


def test_prepare_reproduces_official_safe_mode_request(monkeypatch: pytest.MonkeyPatch) -> None:
    plaintext = WeChatCrypto(TOKEN, AES_KEY, APP_ID).decrypt_message(
        {"Encrypt": REQ_ENCRYPT}, REQ_MSG_SIGNATURE, TS, NONCE
    )
    prefix = _random_prefix(REQ_ENCRYPT)
    monkeypatch.setattr(BasePrpCrypto, "get_random_string", lambda self: prefix)
    client = CallbackClient("http://unused", TOKEN, APP_ID, aes_key=AES_KEY, mode="safe")
    prepared = client.prepare(plaintext, timestamp=TS, nonce=NONCE)
    assert prepared.params == {
        "signature": GET_SIGNATURE,
        "timestamp": TS,
        "nonce": NONCE,
        "openid": "oyORnuP8q7ou2gfYjqLzSIWZf0rs",
        "encrypt_type": "aes",
        "msg_signature": REQ_MSG_SIGNATURE,
    }
    assert messages.xml_to_dict(prepared.body) == {
        "ToUserName": "gh_10f6c3c3ac5a",
        "Encrypt": REQ_ENCRYPT,
    }


def test_reply_vector_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    client = CallbackClient("http://unused", TOKEN, APP_ID, aes_key=AES_KEY, mode="safe")
    body = _encrypted_body(REPLY_ENCRYPT, REPLY_MSG_SIGNATURE, REPLY_TS, NONCE)
    reply = client.decrypt_reply(body)
    assert reply is not None
    assert reply["MsgType"] == "video"
    assert reply["Video"]["Title"] == "testCallBackReplyVideo"
    plaintext = WeChatCrypto(TOKEN, AES_KEY, APP_ID).decrypt_message(
        {"Encrypt": REPLY_ENCRYPT}, REPLY_MSG_SIGNATURE, REPLY_TS, NONCE
    )
    monkeypatch.setattr(BasePrpCrypto, "get_random_string", lambda self: REPLY_PREFIX)
    prepared = client.prepare(plaintext, timestamp=REPLY_TS, nonce=NONCE)
    assert prepared.params["msg_signature"] == REPLY_MSG_SIGNATURE
    assert messages.xml_to_dict(prepared.body)["Encrypt"] == REPLY_ENCRYPT


def test_decrypt_reply_rejects_bad_signature() -> None:
    client = CallbackClient("http://unused", TOKEN, APP_ID, aes_key=AES_KEY, mode="safe")
    forged = _encrypted_body(REPLY_ENCRYPT, "0" * 40, REPLY_TS, NONCE)
    with pytest.raises(InvalidReply, match="MsgSignature"):
        client.decrypt_reply(forged)
    with pytest.raises(InvalidReply, match="not XML"):
        client.decrypt_reply("OK")
    assert client.decrypt_reply("success") is None
    assert client.decrypt_reply("") is None


# --- message shapes against WeChat's documented samples ------------------------------


def _fixture(name: str) -> dict:
    return messages.xml_to_dict((FIXTURES / name).read_text(encoding="utf-8"))


def _same_shape(ours: str, fixture: str) -> None:
    mine, theirs = messages.xml_to_dict(ours), _fixture(fixture)
    assert list(mine.items()) == list(theirs.items())


def test_builders_match_documented_samples() -> None:
    c = CallbackClient("http://unused", TOKEN, APP_ID, account="toUser")
    mid, ct = "1234567890123456", 1348831860
    prefix = "test_parser__test_parse_"
    _same_shape(
        c.text("fromUser", "this is a test", msg_id=mid, create_time=ct),
        prefix + "text_message.xml",
    )
    _same_shape(
        c.image("fromUser", "this is a url", "media_id", msg_id=mid, create_time=ct),
        prefix + "image_message.xml",
    )
    _same_shape(
        messages.voice("toUser", "fromUser", "media_id", None, mid, 1357290913, "Format"),
        prefix + "voice_message.xml",
    )
    _same_shape(
        c.video("fromUser", "media_id", "thumb_media_id", msg_id=mid, create_time=1357290913),
        prefix + "video_message.xml",
    )
    _same_shape(
        c.location(
            "fromUser", 23.134521, 113.358803, 20, "位置信息", msg_id=mid, create_time=1351776360
        ),
        prefix + "location_message.xml",
    )
    _same_shape(
        c.link("fromUser", "公众平台官网链接", "公众平台官网链接", "url", mid, 1351776360),
        prefix + "link_message.xml",
    )
    ev = 123456789
    _same_shape(
        c.event("FromUser", "subscribe", create_time=ev), "test_events__test_subscribe_event.xml"
    )
    _same_shape(
        c.event("FromUser", "VIEW", "www.qq.com", create_time=ev),
        "test_events__test_view_event.xml",
    )
    _same_shape(
        c.event("FromUser", "subscribe", "qrscene_123123", "TICKET", create_time=ev),
        prefix + "subscribe_scan_event.xml",
    )


def test_voice_recognition_element() -> None:
    c = CallbackClient("http://unused", TOKEN, APP_ID)
    assert "Recognition" not in messages.xml_to_dict(c.voice("o1", "m1", None))
    assert messages.xml_to_dict(c.voice("o1", "m1", ""))["Recognition"] == ""
    assert messages.xml_to_dict(c.voice("o1", "m1", "你好"))["Recognition"] == "你好"


def test_defaults_and_escaping() -> None:
    c = CallbackClient("http://unused", TOKEN, APP_ID)
    before = int(time.time())
    msg = messages.xml_to_dict(c.text("o1", "a ]]> b <xml>"))
    assert msg["Content"] == "a ]]> b <xml>"
    assert 0 < int(msg["MsgId"]) < 2**63
    assert before <= int(msg["CreateTime"]) <= int(time.time())
    assert msg["ToUserName"] == "gh_sim_account"
    assert "MsgId" not in messages.xml_to_dict(c.event("o1", "CLICK", "MENU_1"))


def test_mode_needs_aes_key() -> None:
    with pytest.raises(ValueError):
        CallbackClient("http://unused", TOKEN, APP_ID, mode="safe")
    with pytest.raises(ValueError):
        CallbackClient("http://unused", TOKEN, APP_ID, aes_key=AES_KEY, mode="secure")  # type: ignore[arg-type]


# --- against a small service written with wechatpy ------------------------------------

Behaviour = Callable[[dict], "str | tuple[str, int]"]


class FakeService:
    """A callback endpoint that checks what WeChat would send, the way our service does."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.received: list[dict] = []
        self.release = threading.Event()
        self.crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
        app = Flask("fake_service")
        app.add_url_rule("/wechat", "cb", self._handle, methods=["GET", "POST"])
        self.handle: ServerHandle = serve_in_thread(app)
        self.url = self.handle.url + "/wechat"

    def _handle(self) -> str | tuple[str, int]:
        args = request.args.to_dict()
        check_signature(TOKEN, args["signature"], args["timestamp"], args["nonce"])
        if request.method == "GET":
            return args["echostr"]
        raw = request.get_data(as_text=True)
        plain = raw
        if args.get("encrypt_type") == "aes":
            plain = self.crypto.decrypt_message(
                raw, args["msg_signature"], args["timestamp"], args["nonce"]
            )
        info = {"args": args, "raw": raw, "msg": messages.xml_to_dict(plain), "plain": plain}
        self.received.append(info)
        return self.behaviour(info)


@pytest.fixture
def service_factory() -> Iterator[Callable[[Behaviour], FakeService]]:
    made: list[FakeService] = []

    def make(behaviour: Behaviour) -> FakeService:
        made.append(FakeService(behaviour))
        return made[-1]

    yield make
    for svc in made:
        svc.release.set()
        svc.handle.stop()


def _echo_reply(info: dict, *, encrypt: bool, crypto: WeChatCrypto) -> str:
    from wechatpy import parse_message

    reply = create_reply("echo: " + info["msg"]["Content"], parse_message(info["plain"]))
    xml = reply.render()
    return crypto.encrypt_message(xml, info["args"]["nonce"]) if encrypt else xml


def test_verify_url(service_factory: Callable[[Behaviour], FakeService]) -> None:
    svc = service_factory(lambda info: "")
    client = CallbackClient(svc.url, TOKEN, APP_ID)
    resp = client.verify_url("echo-1234567", timestamp=TS, nonce=NONCE)
    assert resp.status_code == 200
    assert resp.text == "echo-1234567"


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
def test_post_and_deliver_in_each_mode(
    mode: str, service_factory: Callable[[Behaviour], FakeService]
) -> None:
    encrypt = mode != "plain"
    svc = service_factory(lambda info: _echo_reply(info, encrypt=encrypt, crypto=svc.crypto))
    client = CallbackClient(svc.url, TOKEN, APP_ID, aes_key=AES_KEY, mode=mode)  # type: ignore[arg-type]
    xml = client.text("oUser1", "在吗")
    delivery = client.deliver(xml)
    assert delivery.ok, delivery
    assert delivery.reply is not None and delivery.reply["Content"] == "echo: 在吗"
    assert delivery.warnings == []
    [got] = svc.received
    assert got["args"]["openid"] == "oUser1"
    assert ("encrypt_type" in got["args"]) is encrypt
    raw = messages.xml_to_dict(got["raw"])
    if mode == "safe":
        assert set(raw) == {"ToUserName", "Encrypt"}
    elif mode == "compat":
        assert raw["Content"] == "在吗" and "Encrypt" in raw
    else:
        assert "Encrypt" not in raw


def test_deliver_retries_same_message_after_timeout(
    service_factory: Callable[[Behaviour], FakeService],
) -> None:
    def stall_first(info: dict) -> str:
        if len(svc.received) == 1:
            svc.release.wait(10)  # held until teardown: WeChat has long given up
        return "success"

    svc = service_factory(stall_first)
    client = CallbackClient(svc.url, TOKEN, APP_ID)
    delivery = client.deliver(client.text("oUser1", "hello"), tries=3, wait=0.3)
    assert [a.status for a in delivery.attempts] == [None, 200]
    assert delivery.attempts[0].error == "no response in 0.3s"
    assert delivery.attempts[0].elapsed >= 0.3
    assert delivery.ok and delivery.reply is None
    first, second = svc.received
    assert first["msg"]["MsgId"] == second["msg"]["MsgId"]
    assert first["raw"] == second["raw"]


def test_deliver_gives_up_after_all_tries(
    service_factory: Callable[[Behaviour], FakeService],
) -> None:
    def stall(info: dict) -> str:
        svc.release.wait(10)
        return "success"

    svc = service_factory(stall)
    client = CallbackClient(svc.url, TOKEN, APP_ID)
    delivery = client.deliver(client.text("oUser1", "hello"), tries=2, wait=0.1)
    assert [a.status for a in delivery.attempts] == [None, None]
    assert delivery.customer_sees_error
    assert delivery.reply_error == "no response on any of 2 tries"


def test_deliver_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = CallbackClient(f"http://127.0.0.1:{port}/wechat", TOKEN, APP_ID)
    delivery = client.deliver(client.text("oUser1", "hello"), tries=3, wait=1)
    assert len(delivery.attempts) == 3
    assert all(a.error and a.error.startswith("connection error") for a in delivery.attempts)
    assert not delivery.ok


def test_deliver_judges_replies_like_wechat(
    service_factory: Callable[[Behaviour], FakeService],
) -> None:
    answers: list[str | tuple[str, int]] = []
    svc = service_factory(lambda info: answers.pop(0))
    safe = CallbackClient(svc.url, TOKEN, APP_ID, aes_key=AES_KEY, mode="safe")
    plain_reply = (
        "<xml><ToUserName><![CDATA[oUser1]]></ToUserName>"
        "<FromUserName><![CDATA[gh_sim_account]]></FromUserName>"
        "<CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{'长' * 700}]]></Content></xml>"
    )
    answers[:] = [("boom", 500), "not xml", plain_reply, "success"]
    results = [safe.deliver(safe.text("oUser1", "q")) for _ in range(4)]
    assert results[0].reply_error == "HTTP 500"
    assert len(results[0].attempts) == 1  # an HTTP answer is not retried
    assert results[1].reply_error is not None and "not XML" in results[1].reply_error
    assert results[2].reply_error == "plaintext reply, but safe mode requires an encrypted one"
    assert any("2100 bytes" in w for w in results[2].warnings)
    assert results[3].ok and results[3].reply is None


def test_cli_say_and_verify(service_factory: Callable[[Behaviour], FakeService]) -> None:
    from click.testing import CliRunner

    from app.simulator.cli import wechat

    svc = service_factory(lambda info: _echo_reply(info, encrypt=False, crypto=svc.crypto))
    common = ["--url", svc.url, "--token", TOKEN, "--app-id", APP_ID]
    said = CliRunner().invoke(wechat, ["say", *common, "你好"])
    assert said.exit_code == 0, said.output
    assert '"Content": "echo: 你好"' in said.output
    verified = CliRunner().invoke(wechat, ["verify", *common, "abc"])
    assert verified.exit_code == 0, verified.output
