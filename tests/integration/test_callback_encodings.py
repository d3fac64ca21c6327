"""Signed callback bodies in other encodings than UTF-8 (real app, /wechat and /wecom):
read by their byte order mark or XML declaration, or refused with a 400 that names the
encoding, never a 500."""

from __future__ import annotations

from codecs import BOM_UTF16_BE, BOM_UTF16_LE
from pathlib import Path

import pytest
from flask import Flask

from app.extensions import db
from app.simulator.callback_client import CallbackClient
from app.simulator.wecom_callback import WeComCallbackClient
from app.store import InboundMessage
from tests.integration.test_wechat_callback import OFFICIAL, _app
from tests.integration.test_wecom_callback import AES, AGENT, CORP, TOKEN, WECOM
from tests.support import WECHAT


@pytest.fixture()
def app(tmp_path: Path) -> Flask:
    return _app(tmp_path, wechat_aes_key=OFFICIAL["aes"], **WECOM)


def _declared(xml: str, encoding: str) -> str:
    return f'<?xml version="1.0" encoding="{encoding}"?>\n{xml}'


def _post(app: Flask, signer: CallbackClient, xml: str, encode):  # noqa: ANN001, ANN202
    """Signs ``xml`` as the platform would, then sends its body as ``encode`` makes it."""
    prepared = signer.prepare(xml)
    path = "/wecom" if isinstance(signer, WeComCallbackClient) else "/wechat"
    body = encode(prepared.body)
    return app.test_client().post(path, query_string=prepared.params, data=body)


def _contents(app: Flask) -> list[str]:
    with app.app_context():
        rows = db.session.scalars(db.select(InboundMessage).order_by(InboundMessage.id))
        return [r.content for r in rows]


PLAIN = CallbackClient("http://x/wechat", WECHAT["token"], WECHAT["app_id"])
SAFE = CallbackClient(
    "http://x/wechat", WECHAT["token"], WECHAT["app_id"], aes_key=OFFICIAL["aes"], mode="safe"
)
WECOM_SIGNER = WeComCallbackClient("http://x/wecom", TOKEN, CORP, AES, AGENT)

ENCODINGS = {
    "utf-16 le with a bom": lambda x: BOM_UTF16_LE + _declared(x, "UTF-16").encode("utf-16-le"),
    "utf-16 be with a bom": lambda x: BOM_UTF16_BE + _declared(x, "UTF-16").encode("utf-16-be"),
    "utf-16 without a declaration": lambda x: x.encode("utf-16"),
    "utf-8 with a bom": lambda x: x.encode("utf-8-sig"),
    "utf-32 with a bom": lambda x: x.encode("utf-32"),
    "gbk declared": lambda x: _declared(x, "GBK").encode("gbk"),
    "gb2312 declared, single quotes": lambda x: (
        _declared(x, "gb2312").replace('"', "'").encode("gb2312")
    ),
}


@pytest.mark.parametrize("label", ENCODINGS)
@pytest.mark.parametrize("signer", [PLAIN, SAFE, WECOM_SIGNER], ids=["plain", "safe", "wecom"])
def test_bodies_are_read_by_their_bom_or_declaration(
    app: Flask, signer: CallbackClient, label: str
) -> None:
    xml = signer.text("o_enc", "退款多久到账？", msg_id="1")
    resp = _post(app, signer, xml, ENCODINGS[label])
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert _contents(app) == ["退款多久到账？"]


def test_iso_8859_1_with_non_ascii_bytes_is_read_as_declared(app: Flask) -> None:
    xml = _declared(PLAIN.text("o_latin", "café crème", msg_id="2"), "ISO-8859-1")
    resp = _post(app, PLAIN, xml, lambda x: x.encode("latin-1"))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert _contents(app) == ["café crème"]


def test_a_passive_reply_answers_a_utf16_body(app: Flask) -> None:
    resp = _post(app, PLAIN, PLAIN.event("o_u16", "subscribe"), lambda x: x.encode("utf-16"))
    assert resp.status_code == 200 and "欢迎关注" in resp.get_data(as_text=True)


REFUSED = {
    "unknown encoding": (
        lambda x: _declared(x, "x-klingon").encode(),
        "unsupported XML encoding 'x-klingon'; send UTF-8",
    ),
    "escape codec": (
        lambda x: _declared(x, "unicode_escape").encode(),
        "unsupported XML encoding 'unicode_escape'; send UTF-8",
    ),
    "latin-1 bytes without a declaration": (
        lambda x: x.encode("latin-1"),
        "the body is not valid utf-8 text",
    ),
    "utf-16 bom with an odd byte": (
        lambda x: x.encode("utf-16") + b"\x00",
        "the body is not valid utf-16 text",
    ),
    "declared gbk, bytes are not": (
        lambda x: _declared(x, "GBK").encode() + b"\xff\xff",
        "the body is not valid gbk text",
    ),
}


@pytest.mark.parametrize("label", REFUSED)
def test_bodies_that_are_not_what_they_say_are_a_400_naming_the_encoding(
    app: Flask, label: str
) -> None:
    encode, message = REFUSED[label]
    xml = PLAIN.text("o_bad", "café", msg_id="3")
    resp = _post(app, PLAIN, xml, encode)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert resp.get_json() == {"error": message}
    assert _contents(app) == []
