"""The 微信客服 simulator's rules without HTTP (app/simulator/kf.py), the kf message as the
plain fields of the shared intake (app/channels/kf/fields.py), and the KF_* settings."""

from __future__ import annotations

import pytest

from app.channels.kf import fields
from app.settings import ConfigError, load_settings
from app.simulator.kf import KfSimulator
from tests.kf.conftest import AES, CORP, SECRET, SERVICER

NOW = 1_700_000_000.0


@pytest.fixture()
def clock() -> list[float]:
    return [NOW]


@pytest.fixture()
def sim(clock: list[float]) -> KfSimulator:
    return KfSimulator(CORP, SECRET, servicers={SERVICER}, clock=lambda: clock[0])


def _sync(sim: KfSimulator, **body: object) -> dict:
    body.setdefault("open_kfid", sim.default_account)
    return sim.api_sync_msg(sim.issue_token(), body)


def test_sync_msg_checks_what_it_is_given(sim: KfSimulator, clock: list[float]) -> None:
    sim.customer_sends("wmA", "你好")
    token = sim.take_notifications()[0].token
    assert _sync(sim, open_kfid="wkUnknown", token=token)["errcode"] == 95000
    assert _sync(sim, token=token, limit=1001)["errcode"] == 40035
    assert _sync(sim, token=token, cursor="not-issued")["errcode"] == 40035
    assert _sync(sim, token="ENCforged")["errcode"] == 95007
    assert sim.api_sync_msg("bad-access-token", {})["errcode"] == 40014
    page = _sync(sim, token=token)
    assert page["has_more"] == 0 and len(page["msg_list"]) == 1
    clock[0] += 601  # the callback's token lives 10 minutes
    assert _sync(sim, token=token)["errcode"] == 95007


def test_an_empty_cursor_starts_three_days_back(sim: KfSimulator, clock: list[float]) -> None:
    sim.customer_sends("wmA", "四天前")
    clock[0] += 4 * 86400
    sim.customer_sends("wmA", "今天")
    page = _sync(sim, token=sim.take_notifications()[-1].token)
    assert [m["text"]["content"] for m in page["msg_list"]] == ["今天"]


def test_service_state_moves_only_along_wecoms_table(sim: KfSimulator) -> None:
    token, kfid = sim.issue_token(), sim.default_account

    def trans(state: int, servicer: str = "") -> dict:
        body = {"open_kfid": kfid, "external_userid": "wmA", "service_state": state}
        return sim.api_service_state_trans(token, dict(body, servicer_userid=servicer))

    assert trans(2)["errcode"] == 95016  # not begun (4): the API may not move it
    sim.customer_sends("wmA", "你好")
    assert trans(3, "lisi")["errcode"] == 95014  # not a servicer on duty
    queued = trans(2)
    assert queued["errcode"] == 0 and queued["msg_code"]
    assert trans(1)["errcode"] == 95016  # from the queue only to a person
    assert trans(3, SERVICER)["msg_code"]
    got = sim.api_service_state_get(token, {"open_kfid": kfid, "external_userid": "wmA"})
    assert (got["service_state"], got["servicer_userid"]) == (3, SERVICER)
    # The queue's code was for state 2: the session has moved on.
    used = sim.api_send_msg_on_event(
        token, {"code": queued["msg_code"], "msgtype": "text", "text": {"content": "排队中"}}
    )
    assert used["errcode"] == 95018


def test_send_msg_needs_a_customer_message_within_48_hours(
    sim: KfSimulator, clock: list[float]
) -> None:
    token, kfid = sim.issue_token(), sim.default_account
    body = {"touser": "wmA", "open_kfid": kfid, "msgtype": "text", "text": {"content": "hi"}}
    assert sim.api_send_msg(token, body)["errcode"] == 95002
    sim.customer_sends("wmA", "你好")
    assert sim.api_send_msg(token, dict(body, msgid="my_id-1"))["msgid"] == "my_id-1"
    assert sim.api_send_msg(token, dict(body, msgid="bad id!"))["errcode"] == 40035
    assert sim.api_send_msg(token, dict(body, text={"content": ""}))["errcode"] == 44004
    assert sim.api_send_msg(token, dict(body, open_kfid="wkOther"))["errcode"] == 95000
    clock[0] += 48 * 3600 + 1
    token = sim.issue_token()  # the old one expired meanwhile
    assert sim.api_send_msg(token, body)["errcode"] == 95002
    sim.customer_sends("wmA", "再来")
    sim.api_send_msg(token, dict(body, text={"content": "长" * 700}))
    assert sim.sent[-1]["over_limit"]  # 2100 bytes: over kf/send_msg's 2048


def test_events_carry_the_account_and_customer_inside(sim: KfSimulator) -> None:
    code = sim.customer_enters("wmA", scene="menu")
    event = sim.messages()[-1]
    assert "open_kfid" not in event and "external_userid" not in event
    assert fields.customer(event) == "wmA" and fields.account(event) == sim.default_account
    assert fields.welcome_code(event) == code
    assert fields.to_fields(event) == {
        "ToUserName": sim.default_account,
        "FromUserName": "wmA",
        "CreateTime": str(int(NOW)),
        "MsgType": "event",
        "MsgId": event["msgid"],
        "Event": "enter_session",
        "EventKey": "menu",
    }


@pytest.mark.parametrize(
    ("msgtype", "body", "expected"),
    [
        ("text", {"content": "怎么退货"}, {"Content": "怎么退货"}),
        ("image", {"media_id": "MEDIA1"}, {"MediaId": "MEDIA1"}),
        ("voice", {"media_id": "MEDIA2"}, {"MediaId": "MEDIA2", "Format": "amr"}),
        (
            "location",
            {"latitude": 23.1, "longitude": 113.3, "name": "广州塔", "address": "海珠区"},
            {"Location_X": "23.1", "Location_Y": "113.3", "Label": "广州塔 海珠区"},
        ),
        (
            "link",
            {"title": "T", "desc": "D", "url": "https://x", "pic_url": "p"},
            {"Title": "T", "Description": "D", "Url": "https://x"},
        ),
        ("miniprogram", {"title": "小程序", "appid": "wx1"}, {"Title": "小程序"}),
        ("business_card", {"userid": "u1"}, {}),
    ],
)
def test_customer_messages_as_intake_fields(
    sim: KfSimulator, msgtype: str, body: dict, expected: dict
) -> None:
    msgid = sim.customer_sends("wmB", msgtype=msgtype, body=body)
    msg = sim.messages()[-1]
    assert fields.to_fields(msg) == {
        "ToUserName": sim.default_account,
        "FromUserName": "wmB",
        "CreateTime": str(int(NOW)),
        "MsgType": msgtype,
        "MsgId": msgid,
        **expected,
    }


def test_kf_settings_need_each_other() -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(kf_token="kftoken123")
    for name in ("KF_ENCODING_AES_KEY", "KF_CORP_ID", "KF_SECRET"):
        assert name in exc.value.message
    with pytest.raises(ConfigError):
        load_settings(kf_token="kftoken123", kf_encoding_aes_key="short", kf_corp_id=CORP,
                      kf_secret=SECRET)  # fmt: skip
    with pytest.raises(ConfigError):
        load_settings(kf_sync_limit=1001)
    ok = load_settings(kf_token="kftoken123", kf_encoding_aes_key=AES, kf_corp_id=CORP,
                       kf_secret=SECRET)  # fmt: skip
    assert ok.kf_configured and ok.kf_api_base_url == "https://qyapi.weixin.qq.com"
    assert not load_settings().kf_configured
