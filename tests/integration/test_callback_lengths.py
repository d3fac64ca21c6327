"""Signed callbacks whose fields are longer than their columns, on PostgreSQL (which,
unlike SQLite, enforces column lengths): every documented event is acknowledged and
stored, an id no customer can have is acknowledged and dropped, never a 503 that WeChat
would retry three times."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from app.extensions import db
from app.messages.routing import IMAGE_RECEIVED
from app.simulator import messages
from app.simulator.callback_client import CallbackClient
from app.simulator.wecom_callback import WeComCallbackClient
from app.store import InboundMessage
from tests.conftest import temp_pg_database
from tests.integration.test_wechat_callback import FIXTURES as MP_FIXTURES
from tests.integration.test_wechat_callback import _app, _documented_messages
from tests.integration.test_wecom_callback import AES, CORP, TOKEN, WECOM
from tests.integration.test_wecom_callback import FIXTURES as WORK_FIXTURES
from tests.support import WECHAT

#: Real WeChat events whose stored type ("event:" + name) is longer than 32 characters.
LONG_EVENTS = (
    "qualification_verify_success",
    "user_enter_session_from_card",
    "submit_membercard_user_info",
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    with temp_pg_database() as url:
        # The samples of WeCom's documentation are addressed to AgentID 1.
        app = _app(
            tmp_path_factory.mktemp("data"),
            database_url=url,
            **dict(WECOM, wecom_agent_id="1"),
        )
        yield app
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture(scope="module")
def wechat() -> CallbackClient:
    return CallbackClient("http://x/wechat", WECHAT["token"], WECHAT["app_id"])


@pytest.fixture(scope="module")
def wecom() -> WeComCallbackClient:
    return WeComCallbackClient("http://x/wecom", TOKEN, CORP, AES, 1)


def _post(app: Flask, signer: CallbackClient, xml: str):  # noqa: ANN202
    prepared = signer.prepare(xml)
    path = "/wecom" if isinstance(signer, WeComCallbackClient) else "/wechat"
    resp = app.test_client().post(path, query_string=prepared.params, data=prepared.body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp


def _rows(app: Flask, customer: str) -> list[InboundMessage]:
    with app.app_context():
        query = db.select(InboundMessage).where(InboundMessage.customer == customer)
        return list(db.session.scalars(query.order_by(InboundMessage.id)))


def _wechat_fixtures() -> list[str]:
    return _documented_messages()


def _wecom_fixtures() -> list[str]:
    rows = [line.split("\t") for line in (WORK_FIXTURES / "index.tsv").read_text().splitlines()]
    return [r[0] for r in rows if len(r) > 3 and r[3]]


@pytest.mark.parametrize("fixture", _wechat_fixtures())
def test_every_documented_wechat_message_is_acknowledged_on_postgresql(
    app: Flask, wechat: CallbackClient, fixture: str
) -> None:
    body = _post(app, wechat, (MP_FIXTURES / fixture).read_text()).get_data(as_text=True)
    assert body == "" or body.startswith("<xml>")


@pytest.mark.parametrize("fixture", _wecom_fixtures())
def test_every_documented_wecom_message_is_acknowledged_on_postgresql(
    app: Flask, wecom: WeComCallbackClient, fixture: str
) -> None:
    body = _post(app, wecom, (WORK_FIXTURES / fixture).read_text()).get_data(as_text=True)
    assert body == "" or "<Encrypt>" in body


@pytest.mark.parametrize("event", LONG_EVENTS)
@pytest.mark.parametrize("channel", ["wechat", "wecom"])
def test_events_with_long_names_are_stored_with_their_type_cut_to_the_column(
    app: Flask,
    wechat: CallbackClient,
    wecom: WeComCallbackClient,
    channel: str,
    event: str,
) -> None:
    signer = wechat if channel == "wechat" else wecom
    customer = f"o_{channel}_{event}"[:28]
    xml = signer.event(customer, event)
    for _ in range(3):  # WeChat's three tries: stored once
        assert _post(app, signer, xml).get_data(as_text=True) == ""
    rows = _rows(app, customer)
    assert [(r.channel, r.msg_type, r.status) for r in rows] == [
        (channel, f"event:{event}"[:32], "ignored")
    ]


def test_fields_longer_than_their_columns_are_acknowledged_and_stored_to_fit(
    app: Flask, wechat: CallbackClient
) -> None:
    head = [("ToUserName", "gh_account", True), ("CreateTime", 1_700_000_000, False)]
    # An unknown message type of 40 characters: the polite "cannot read this" reply.
    unknown = messages.render(
        [*head, ("FromUserName", "o_long_type", True), ("MsgType", "t" * 40, True)]
        + [("MsgId", "41", False)]
    )
    assert "<xml>" in _post(app, wechat, unknown).get_data(as_text=True)
    # Stored under "other": a type the platforms do not send is no label (a signed body can
    # carry markup there); see tests/chaos/test_hostile_bodies.py.
    assert [r.msg_type for r in _rows(app, "o_long_type")] == ["other"]

    # An unknown event of 60 characters: ignored.
    event = messages.event("gh_account", "o_long_event", "e" * 60)
    assert _post(app, wechat, event).get_data(as_text=True) == ""
    assert [(r.msg_type, r.status) for r in _rows(app, "o_long_event")] == [
        (f"event:{'e' * 60}"[:32], "ignored")
    ]

    # A MsgId of 200 digits: stored once for three tries, under a key that fits.
    text = messages.text("gh_account", "o_long_msgid", "发票怎么开", msg_id="9" * 200)
    for _ in range(3):
        _post(app, wechat, text)
    rows = _rows(app, "o_long_msgid")
    assert len(rows) == 1 and len(rows[0].dedup_key) == 128
    assert rows[0].dedup_key.startswith("9" * 100) and rows[0].content == "发票怎么开"

    # A MediaId of 300 characters is no WeChat media: the customer is asked in words.
    image = messages.image("gh_account", "o_long_media", "http://x/p.jpg", "m" * 300, "42")
    assert IMAGE_RECEIVED in _post(app, wechat, image).get_data(as_text=True)
    assert [(r.media_id, r.status) for r in _rows(app, "o_long_media")] == [("", "answered")]


@pytest.mark.parametrize("channel", ["wechat", "wecom"])
def test_a_sender_id_no_customer_can_have_is_acknowledged_and_not_stored(
    app: Flask, wechat: CallbackClient, wecom: WeComCallbackClient, channel: str
) -> None:
    signer = wechat if channel == "wechat" else wecom
    sender = f"o_{channel}_" + "x" * 129
    assert _post(app, signer, signer.text(sender, "退款多久到账？")).get_data(as_text=True) == ""
    assert _rows(app, sender) == []


def test_an_account_id_longer_than_its_column_is_acknowledged_and_not_stored(
    app: Flask, wechat: CallbackClient
) -> None:
    xml = messages.text("g" * 65, "o_long_account", "退款多久到账？", msg_id="43")
    assert _post(app, wechat, xml).get_data(as_text=True) == ""
    assert _rows(app, "o_long_account") == []
