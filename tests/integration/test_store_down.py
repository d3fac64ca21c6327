"""Callbacks while PostgreSQL cannot be reached: acknowledged, kept on disk, and stored
once the database is back (app/messages/spool.py). The full outage under traffic, with
the real processes and a crashed server, is tests/chaos/test_outages.py."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from app import create_app
from app.extensions import db
from app.messages import spool
from app.settings import load_settings
from app.simulator.callback_client import CallbackClient
from app.simulator.wecom_callback import WeComCallbackClient
from app.store import InboundMessage
from tests.conftest import temp_pg_database
from tests.integration.test_wecom_callback import AES, CORP, TOKEN, WECOM
from tests.support import WECHAT, free_port, wait_until


def _app(data_dir: Path, database_url: str, **overrides: object) -> Flask:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "milvus_uri": f"http://127.0.0.1:{free_port()}",
        "wechat_token": WECHAT["token"],
        "wechat_app_id": WECHAT["app_id"],
        "wechat_app_secret": WECHAT["secret"],
        **dict(WECOM, wecom_agent_id="1"),
    }
    values.update(overrides)
    return create_app(load_settings(**values))


def _dead_database() -> str:
    return f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/gone"


def _post(app: Flask, signer: CallbackClient, xml: str) -> str:
    prepared = signer.prepare(xml)
    path = "/wecom" if isinstance(signer, WeComCallbackClient) else "/wechat"
    resp = app.test_client().post(path, query_string=prepared.params, data=prepared.body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_data(as_text=True)


def test_messages_taken_while_the_database_is_down_are_stored_when_it_is_back(
    tmp_path: Path,
) -> None:
    down = _app(tmp_path, _dead_database())
    wechat = CallbackClient("http://x/wechat", WECHAT["token"], WECHAT["app_id"])
    wecom = WeComCallbackClient("http://x/wecom", TOKEN, CORP, AES, 1)

    assert _post(down, wechat, wechat.text("o_down_1", "你们几点关门？", msg_id=7001)) == ""
    assert _post(down, wechat, wechat.text("o_down_1", "周末呢？", msg_id=7002)) == ""
    body = _post(down, wecom, wecom.text("zhangsan", "发票怎么开？", msg_id=7003))
    assert body == ""  # answered through WeCom's API once stored
    assert spool.waiting(spool.directory(tmp_path)) == 3

    with temp_pg_database() as url:
        up = _app(tmp_path, url)
        with up.app_context():
            db.create_all()

            def stored() -> list[tuple[str, str, str]]:
                db.session.remove()
                rows = db.session.scalars(db.select(InboundMessage).order_by(InboundMessage.id))
                return [(r.channel, r.customer, r.content) for r in rows]

            # The new process finds the spool and drains it: no callback needed.
            wait_until(lambda: len(stored()) == 3, 30, "the spooled messages stored")
            assert stored() == [
                ("wechat", "o_down_1", "你们几点关门？"),
                ("wechat", "o_down_1", "周末呢？"),  # the customer's order kept
                ("wecom", "zhangsan", "发票怎么开？"),
            ]
            assert spool.waiting(spool.directory(tmp_path)) == 0
            # A retry of WeChat's arriving now is the same message: stored once.
            _post(up, wechat, wechat.text("o_down_1", "你们几点关门？", msg_id=7001))
            assert len(stored()) == 3
            db.session.remove()
            db.engine.dispose()


def test_passive_mode_tells_the_customer_the_answer_is_coming(tmp_path: Path) -> None:
    down = _app(tmp_path, _dead_database(), wechat_reply_mode="passive")
    wechat = CallbackClient("http://x/wechat", WECHAT["token"], WECHAT["app_id"])
    body = _post(down, wechat, wechat.text("o_down_2", "能开发票吗？", msg_id=7101))
    settings = down.extensions["settings"]
    assert settings.wechat_passive_pending_text in body
    assert spool.waiting(spool.directory(tmp_path)) == 1
    _empty(spool.directory(tmp_path))  # the database never comes back here


def _empty(folder: Path) -> None:
    """Removes the spooled files so the drainer ends instead of trying until the session
    ends; it renames each file as it tries it, so a pass may miss one."""

    def removed() -> bool:
        for kept in folder.iterdir():
            kept.unlink(missing_ok=True)
        return spool.waiting(folder) == 0

    wait_until(removed, 10, "the spool to be empty", interval=0.01)


def test_when_the_spool_cannot_be_written_either_wechat_is_asked_to_retry(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    down = _app(data, _dead_database())
    (data / "spool").write_text("not a directory")  # the disk refuses
    wechat = CallbackClient("http://x/wechat", WECHAT["token"], WECHAT["app_id"])
    prepared = wechat.prepare(wechat.text("o_down_3", "在吗", msg_id=7201))
    resp = down.test_client().post("/wechat", query_string=prepared.params, data=prepared.body)
    assert resp.status_code == 503
    assert "retry" in resp.get_json()["error"]
