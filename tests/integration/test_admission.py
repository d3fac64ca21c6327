"""Rate limiting and flood protection through the real /wechat and /wecom endpoints (app
factory, SQLite store and counters, embedded broker, no worker): what the customer is
told, what is stored, and that accepted questions are never shed."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from app.extensions import db
from app.simulator.callback_client import CallbackClient
from app.simulator.wecom_callback import WeComCallbackClient
from app.store import InboundMessage
from tests.integration.test_wechat_callback import _app
from tests.integration.test_wecom_callback import AES, AGENT, CORP, TOKEN, WECOM
from tests.support import WECHAT

LIMITS = {"rate_limit_messages": 2, "rate_limit_window_s": 3600, "flood_max_backlog": 0}


def _rows(app: Flask) -> list[tuple[str, str, str]]:
    with app.app_context():
        rows = db.session.scalars(db.select(InboundMessage).order_by(InboundMessage.id))
        return [(r.customer, r.status, r.error.split(":")[0]) for r in rows]


def _wechat(app: Flask, signer: CallbackClient, xml: str) -> str:
    prepared = signer.prepare(xml)
    resp = app.test_client().post("/wechat", query_string=prepared.params, data=prepared.body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    reply = signer.decrypt_reply(resp.get_data(as_text=True))
    return reply["Content"] if reply else ""


def test_wechat_customer_over_the_limit_is_told_once(tmp_path: Path) -> None:
    app = _app(tmp_path, **LIMITS)
    signer = CallbackClient("http://x/wechat", WECHAT["token"], WECHAT["app_id"])
    settings = app.extensions["settings"]
    said = [
        _wechat(app, signer, signer.text("o_fast", f"问题{i}", msg_id=100 + i)) for i in range(5)
    ]
    assert said == ["", "", settings.rate_limit_reply, "", ""]
    # WeChat's retry of the limited message is a duplicate: counted and answered once.
    assert _wechat(app, signer, signer.text("o_fast", "问题2", msg_id=102)) == ""
    # Others are not affected, and non-questions are not counted.
    assert _wechat(app, signer, signer.text("o_calm", "你好", msg_id=200)) == ""
    assert "欢迎关注" in _wechat(app, signer, signer.event("o_fast", "subscribe"))
    assert _rows(app) == [
        ("o_fast", "received", ""),
        ("o_fast", "received", ""),
        ("o_fast", "ignored", "rate_limited"),
        ("o_fast", "ignored", "rate_limited"),
        ("o_fast", "ignored", "rate_limited"),
        ("o_calm", "received", ""),
        ("o_fast", "answered", ""),
    ]


def test_wecom_member_over_the_limit_gets_an_encrypted_polite_reply(tmp_path: Path) -> None:
    app = _app(tmp_path, **WECOM, **LIMITS)
    signer = WeComCallbackClient("http://x/wecom", TOKEN, CORP, AES, AGENT)
    replies = []
    for i in range(4):
        prepared = signer.prepare(signer.text("zhangsan", f"问题{i}", msg_id=300 + i))
        resp = app.test_client().post("/wecom", query_string=prepared.params, data=prepared.body)
        reply = signer.decrypt_reply(resp.get_data(as_text=True))
        replies.append(reply["Content"] if reply else "")
    assert replies == ["", "", app.extensions["settings"].rate_limit_reply, ""]
    assert [s for _, s, _ in _rows(app)] == ["received", "received", "ignored", "ignored"]


def test_flood_sheds_new_questions_politely_and_keeps_accepted_ones(tmp_path: Path) -> None:
    app = _app(tmp_path, rate_limit_messages=0, flood_max_backlog=2)
    signer = CallbackClient("http://x/wechat", WECHAT["token"], WECHAT["app_id"])
    flood_reply = app.extensions["settings"].flood_reply
    said = [_wechat(app, signer, signer.text(f"o_{i}", "在吗", msg_id=400 + i)) for i in range(4)]
    assert said == ["", "", flood_reply, flood_reply]
    # Welcome and menu replies need no worker: they still go out during a flood.
    assert "欢迎关注" in _wechat(app, signer, signer.event("o_9", "subscribe"))
    # A worker answers one of the accepted questions: there is room again.
    with app.app_context():
        db.session.execute(
            db.update(InboundMessage)
            .where(InboundMessage.dedup_key == "400")
            .values(status="answered")
        )
        db.session.commit()
    assert _wechat(app, signer, signer.text("o_5", "在吗", msg_id=405)) == ""
    assert _rows(app) == [
        ("o_0", "answered", ""),
        ("o_1", "received", ""),
        ("o_2", "ignored", "busy"),
        ("o_3", "ignored", "busy"),
        ("o_9", "answered", ""),
        ("o_5", "received", ""),
    ]
