"""Reading a 微信客服 account (app/channels/kf/sync.py) against the simulator over HTTP, on
PostgreSQL: every page until has_more is 0, the cursor stored before a page is taken in,
a killed reader's page taken in by the next one, one reader per account, and only
customers' messages and enter_session taken in."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from app.channels.api_client import WeChatAPIError
from app.channels.kf import cursor
from app.channels.kf.api import SYNC_MSG, KfAPI, KfChannel, SyncPage
from app.channels.kf.sync import sync_account
from app.extensions import db
from app.simulator.kf import KfSimulator
from app.simulator.server import ServerHandle
from app.store import KfCursor
from tests.kf.conftest import SERVICER

Sim = tuple[KfSimulator, ServerHandle]


def _sync(app: Flask, api: KfAPI | None = None, **kwargs: Any):  # noqa: ANN202
    settings = app.extensions["settings"]
    kfid = kwargs.pop("open_kfid", None)
    return sync_account(
        api or KfAPI(settings),
        kfid or "wkSimDemoAccount000000000000001",
        kwargs.pop("take", None),
        lock_dir=settings.data_dir / "locks",
        **kwargs,
    )


def _texts(msgs: list[dict[str, Any]]) -> list[str]:
    return [m["text"]["content"] for m in msgs if m.get("msgtype") == "text"]


def test_every_page_is_read_until_has_more_is_0(app: Flask, sim: Sim) -> None:
    simulator, _ = sim
    simulator.page_size = 3
    for i in range(7):
        simulator.customer_sends(f"wmCustomer{i % 2}", f"第{i}条")
    token = simulator.take_notifications()[-1].token

    first = _sync(app, token=token)
    assert _texts(first.taken) == [f"第{i}条" for i in range(7)]
    assert first.pages == 3 and simulator.pages_served == 3
    # From the stored cursor: nothing is read twice, and new messages only.
    assert _sync(app, token=token).taken == []
    simulator.customer_sends("wmCustomer0", "第7条")
    assert _texts(_sync(app, token=token).taken) == ["第7条"]
    row = db.session.get(KfCursor, simulator.default_account)
    assert row is not None and row.cursor and row.pending == "" and row.pages == 5


def test_an_empty_page_with_has_more_is_not_the_end(app: Flask, sim: Sim) -> None:
    simulator, _ = sim
    simulator.customer_sends("wmCustomer0", "在吗")
    simulator.empty_pages(2)
    result = _sync(app, token=simulator.take_notifications()[0].token)
    assert _texts(result.taken) == ["在吗"] and result.pages == 3


def test_the_cursor_is_stored_before_the_page_is_taken_in(
    app: Flask, sim: Sim, pg_url: str
) -> None:
    simulator, _ = sim
    simulator.page_size = 2
    for i in range(3):
        simulator.customer_sends("wmCustomer0", f"问题{i}")
    api = KfAPI(app.extensions["settings"])
    pages: list[SyncPage] = []
    reading = api.sync_msg

    def sync_msg(*args: Any, **kwargs: Any) -> SyncPage:
        pages.append(reading(*args, **kwargs))
        return pages[-1]

    api.sync_msg = sync_msg  # type: ignore[method-assign]
    other = sa.create_engine(pg_url)  # what another process sees: committed rows only
    seen: list[tuple[str, str, list[str]]] = []

    def take(msg: dict[str, Any]) -> None:
        with other.connect() as conn:
            row = conn.execute(sa.text("SELECT cursor, pending FROM kf_cursors")).one()
        pending = [m["msgid"] for m in json.loads(row.pending)]
        seen.append((msg["msgid"], row.cursor, pending))

    try:
        _sync(app, api, token=simulator.take_notifications()[0].token, take=take)
    finally:
        other.dispose()
    assert len(pages) == 2
    # Each message was taken in only after its page's next_cursor and the page itself
    # were committed.
    page_of = {m["msgid"]: p for p in pages for m in p.msg_list}
    for msgid, stored_cursor, pending in seen:
        assert stored_cursor == page_of[msgid].next_cursor
        assert msgid in pending


def test_a_killed_reader_leaves_its_page_to_the_next_one(app: Flask, sim: Sim) -> None:
    simulator, _ = sim
    simulator.page_size = 3
    ids = [simulator.customer_sends("wmCustomer0", f"消息{i}") for i in range(5)]
    token = simulator.take_notifications()[0].token
    taken: list[str] = []

    def dies_at_the_second(msg: dict[str, Any]) -> None:
        if len(taken) == 1:
            raise SystemExit("worker killed")
        taken.append(msg["msgid"])

    with pytest.raises(SystemExit):
        _sync(app, token=token, take=dies_at_the_second)
    assert simulator.pages_served == 1
    stored = db.session.get(KfCursor, simulator.default_account, populate_existing=True)
    assert stored is not None and len(json.loads(stored.pending)) == 3

    again: list[str] = []
    result = _sync(app, token=token, take=lambda m: again.append(m["msgid"]))
    # The stored page first (the intake drops what it already has, by msgid), then the
    # rest from the stored cursor: none lost, the first page not asked for again.
    assert result.resumed == 3
    assert again == ids[:3] + ids[3:]
    assert simulator.pages_served == 2
    assert set(taken) | set(again) == set(ids)


def test_a_second_reader_waits_for_the_first_then_reads_after_it(app: Flask, sim: Sim) -> None:
    simulator, _ = sim
    simulator.customer_sends("wmCustomer0", "第一条")
    token = simulator.take_notifications()[0].token
    settings = app.extensions["settings"]
    holding, release = threading.Event(), threading.Event()

    def first_reader() -> None:
        with app.app_context():
            kfid = simulator.default_account
            with cursor.one_reader(kfid, settings.data_dir / "locks", 5):
                holding.set()
                release.wait(10)

    holder = threading.Thread(target=first_reader)
    holder.start()
    try:
        assert holding.wait(10)
        with pytest.raises(cursor.ReaderBusy):
            _sync(app, token=token, wait_s=0.3)
        assert simulator.pages_served == 0

        # A message arrives while the first reader still reads: the second waits and then
        # reads it from the cursor the first one stored.
        simulator.customer_sends("wmCustomer0", "第二条")
        threading.Timer(0.5, release.set).start()
        started = time.monotonic()
        result = _sync(app, token=token, wait_s=10)
        assert time.monotonic() - started >= 0.4
        assert _texts(result.taken) == ["第一条", "第二条"]
    finally:
        release.set()
        holder.join(10)


def test_only_customers_messages_and_enter_session_are_taken_in(app: Flask, sim: Sim) -> None:
    simulator, _ = sim
    simulator.echo_api_sends = True  # as peers report: the bot's own replies read back
    code = simulator.customer_enters("wmNew")
    asked = simulator.customer_sends("wmNew", "怎么退货")
    KfChannel(app.extensions["settings"], open_kfid=simulator.default_account).send_text(
        "wmNew", "七天内可以退货。"
    )
    simulator.servicer_sends("wmNew", "我是客服小张", SERVICER)
    simulator.system_event({"event_type": "msg_send_fail", "fail_msgid": "x", "fail_type": 10})
    simulator.repeat(asked)  # WeChat hands the same message out again
    late = simulator.customer_sends("wmNew", "还在吗", send_time=int(time.time()) - 30)

    result = _sync(app, token=simulator.take_notifications()[-1].token)
    kinds = [
        (m["origin"], m.get("event", {}).get("event_type", m["msgtype"])) for m in result.taken
    ]
    assert kinds == [(3, "text"), (4, "enter_session"), (3, "text")]
    assert result.taken[0]["msgid"] == late  # oldest first, whatever the log order
    assert result.taken[1]["event"]["welcome_code"] == code
    assert dict(result.skipped) == {"servicer": 2, "system": 1, "duplicate": 1}


def test_sync_errors_are_bounded_and_keep_the_position(app: Flask, sim: Sim) -> None:
    simulator, _ = sim
    simulator.customer_sends("wmCustomer0", "你好")
    token = simulator.take_notifications()[0].token
    simulator.inject(SYNC_MSG, -1)  # busy once: retried inside the call
    assert _texts(_sync(app, token=token).taken) == ["你好"]
    simulator.customer_sends("wmCustomer0", "再问一次")
    simulator.inject(SYNC_MSG, -1, times=5)
    with pytest.raises(WeChatAPIError) as busy:
        _sync(app, token=token)
    assert busy.value.errcode == -1 and busy.value.retryable
    # Without a token WeChat limits sync_msg strictly: permanent for this call.
    _sync(app)
    _sync(app)
    with pytest.raises(WeChatAPIError) as limited:
        _sync(app)
    assert limited.value.errcode == 45009 and not limited.value.retryable
    assert _texts(_sync(app, token=token).taken) == []  # read by the untokened syncs
