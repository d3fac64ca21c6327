"""The 微信客服 callback (app/channels/kf/controller.py; its queueing replaced here by a
list or an inline sync): the encrypted URL check, kf_msg_or_event queued as a sync,
refused input as a 4xx with a reason, and the simulator notifying the real callback over
HTTP, whose sync reads back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from app.channels.kf.api import KfAPI
from app.channels.kf.controller import ENQUEUE, URL
from app.channels.kf.sync import sync_account
from app.channels.wechat.security import sign
from app.extensions import db
from app.simulator.kf import DEMO_OPEN_KFID, KfSimulator
from app.simulator.kf_callback import KfCallbackClient, kf_event_xml
from app.simulator.kf_server import create_kf_simulator_app
from app.simulator.server import serve_in_thread
from app.simulator.wecom_callback import WeComCallbackClient
from tests.kf.conftest import AES, CORP, SECRET, TOKEN, kf_app

OTHER_AES = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"


@pytest.fixture()
def kf(app: Flask) -> Iterator[tuple[FlaskClient, list[tuple[str, str]]]]:
    queued: list[tuple[str, str]] = []
    app.extensions[ENQUEUE] = lambda kfid, token: queued.append((kfid, token))
    yield app.test_client(), queued


@pytest.fixture()
def signer() -> KfCallbackClient:
    return KfCallbackClient("http://x/kf", TOKEN, CORP, AES)


def _post(client: FlaskClient, signer: KfCallbackClient, xml: str, **kwargs: Any):  # noqa: ANN201
    prepared = signer.prepare(xml, **kwargs)
    return client.post(URL, query_string=prepared.params, data=prepared.body)


def test_url_check_answers_the_decrypted_echostr(
    app: Flask, kf: tuple[FlaskClient, list], signer: KfCallbackClient
) -> None:
    client, _ = kf
    params, encrypt = signer._seal("8812345678901234567", None, None)
    resp = client.get(URL, query_string=dict(params, echostr=encrypt))
    assert resp.status_code == 200 and resp.get_data(as_text=True) == "8812345678901234567"
    bad = dict(params, echostr=encrypt, msg_signature="0" * 40)
    assert client.get(URL, query_string=bad).status_code == 403


def test_a_notification_is_acknowledged_and_queued(
    kf: tuple[FlaskClient, list], signer: KfCallbackClient
) -> None:
    client, queued = kf
    resp = _post(client, signer, signer.notification(DEMO_OPEN_KFID, "ENCApHxnGDNAVNY4AaSJ"))
    assert resp.status_code == 200 and resp.get_data() == b""
    assert queued == [(DEMO_OPEN_KFID, "ENCApHxnGDNAVNY4AaSJ")]


def test_refused_input_gets_a_4xx_with_a_reason(
    kf: tuple[FlaskClient, list], signer: KfCallbackClient
) -> None:
    client, queued = kf
    good = signer.prepare(signer.notification(DEMO_OPEN_KFID, "tok"))
    forged = dict(good.params, msg_signature=sign("guessed", "1", "2", "3"))
    assert client.post(URL, query_string=forged, data=good.body).status_code == 403
    stale = signer.prepare(signer.notification(DEMO_OPEN_KFID, "tok"), timestamp=1_000_000)
    assert client.post(URL, query_string=stale.params, data=stale.body).status_code == 403
    for body in ("", "<xml><Encrypt>", "<!DOCTYPE x [<!ENTITY a 'b'>]><xml>&a;</xml>"):
        resp = client.post(URL, query_string=good.params, data=body)
        assert resp.status_code == 400 and resp.get_json()["error"], body
    # Signed for another company's CorpID, or with another key: not ours.
    other = KfCallbackClient("http://x/kf", TOKEN, "wwanothercorp00000", AES)
    resp = _post(client, other, other.notification(DEMO_OPEN_KFID, "tok"))
    assert resp.status_code == 400 and "CorpID" in resp.get_json()["error"]
    wrong_key = KfCallbackClient("http://x/kf", TOKEN, CORP, OTHER_AES)
    assert _post(client, wrong_key, wrong_key.notification(DEMO_OPEN_KFID, "t")).status_code == 400
    # Decrypted, but not a usable notification.
    no_token = kf_event_xml(CORP, DEMO_OPEN_KFID, "").replace("<Token><![CDATA[]]></Token>", "")
    assert _post(client, signer, no_token).status_code == 400
    markup = signer.notification("wk<script>", "tok")
    assert _post(client, signer, markup).status_code == 400
    assert queued == []


def test_other_events_are_acknowledged_and_ignored(
    kf: tuple[FlaskClient, list], signer: KfCallbackClient
) -> None:
    client, queued = kf
    xml = kf_event_xml(CORP, DEMO_OPEN_KFID, "tok").replace("kf_msg_or_event", "kf_account_auth")
    resp = _post(client, signer, xml)
    assert resp.status_code == 200 and queued == []


def test_a_notification_that_cannot_be_queued_is_retried_by_wecom(
    app: Flask, kf: tuple[FlaskClient, list], signer: KfCallbackClient
) -> None:
    client, _ = kf

    def broker_down(kfid: str, token: str) -> None:
        raise ConnectionError("broker down")

    app.extensions[ENQUEUE] = broker_down
    resp = _post(client, signer, signer.notification(DEMO_OPEN_KFID, "tok"))
    assert resp.status_code == 503


def test_off_when_not_configured(pg_url: str, tmp_path: Path, signer: KfCallbackClient) -> None:
    app = kf_app(tmp_path, pg_url, "http://127.0.0.1:9", kf_token="")
    resp = _post(app.test_client(), signer, signer.notification(DEMO_OPEN_KFID, "tok"))
    assert resp.status_code == 503


def test_the_simulator_notifies_the_callback_and_the_sync_reads_back(
    app: Flask, tmp_path: Path
) -> None:
    """Over HTTP both ways: a customer writes in the simulator, which POSTs the encrypted
    notification to our /kf; its sync (run inline here, a Celery task in production)
    pulls the message with the notification's token."""
    settings = app.extensions["settings"]
    taken: list[str] = []

    def sync_now(kfid: str, token: str) -> None:
        result = sync_account(
            KfAPI(settings), kfid, None, token=token, lock_dir=settings.data_dir / "locks"
        )
        taken.extend(m["text"]["content"] for m in result.taken)

    app.extensions[ENQUEUE] = sync_now
    with serve_in_thread(app) as ours:
        notifier = KfCallbackClient(ours.url + URL, TOKEN, CORP, AES)
        simulator = KfSimulator(CORP, SECRET)
        with serve_in_thread(create_kf_simulator_app(simulator, notifier)) as server:
            settings.kf_api_base_url = server.url
            assert notifier.verify_url("123").text == "123"
            started = time.monotonic()
            resp = requests.post(
                server.url + "/_sim/kf/customer",
                json={"external_userid": "wmK", "content": "我的订单还没发货"},
                timeout=10,
            )
            assert resp.json()["callbacks"] == [{"ok": True, "error": None}]
            assert time.monotonic() - started < 5
    assert taken == ["我的订单还没发货"]


def test_the_cli_verifies_and_plays_a_customer(app: Flask) -> None:
    """``flask kf verify`` and ``flask kf simulate``: the service here answers each
    customer message by echoing it through KfChannel (the answering itself is the
    worker's, tested elsewhere)."""
    from click.testing import CliRunner

    from app.channels.kf.api import KfChannel
    from app.simulator.kf_cli import kf as kf_cli

    settings = app.extensions["settings"]

    def answer_now(kfid: str, token: str) -> None:
        channel = KfChannel(settings, open_kfid=kfid)
        result = sync_account(
            channel.api, kfid, None, token=token, lock_dir=settings.data_dir / "locks"
        )
        for msg in result.taken:
            channel.send_text(msg["external_userid"], "收到：" + msg["text"]["content"])

    app.extensions[ENQUEUE] = answer_now
    with serve_in_thread(app) as ours:
        notifier = KfCallbackClient(ours.url + URL, TOKEN, CORP, AES)
        simulator = KfSimulator(CORP, SECRET)
        with serve_in_thread(create_kf_simulator_app(simulator, notifier)) as server:
            settings.kf_api_base_url = server.url
            creds = ["--url", ours.url + URL, "--token", TOKEN, "--corp-id", CORP]
            verified = CliRunner().invoke(kf_cli, ["verify", *creds, "--aes-key", AES])
            assert verified.exit_code == 0, verified.output
            said = CliRunner().invoke(
                kf_cli, ["simulate", "--simulator-url", server.url, "--timeout", "10", "在吗"]
            )
    assert said.exit_code == 0, said.output
    assert said.output.strip() == "收到：在吗"


WECOM_TOKEN, WECOM_AGENT = "wecomtoken9", "1000002"
WECOM = {
    "wecom_token": WECOM_TOKEN,
    "wecom_aes_key": OTHER_AES,
    "wecom_corp_id": CORP,
    "wecom_agent_id": WECOM_AGENT,
    "wecom_secret": "s3cret",
}


def test_a_notification_at_the_wecom_apps_callback_is_queued_too(
    pg_url: str, tmp_path: Path
) -> None:
    """Where 微信客服's API is called through the WeCom app (微信客服 → API → 可调用接口的
    应用), its notifications come to that app's callback: /wecom queues them as /kf does."""
    app = kf_app(tmp_path, pg_url, "http://127.0.0.1:9", **WECOM)
    queued: list[tuple[str, str]] = []
    app.extensions[ENQUEUE] = lambda kfid, token: queued.append((kfid, token))
    wecom = WeComCallbackClient("http://x/wecom", WECOM_TOKEN, CORP, OTHER_AES, WECOM_AGENT)
    client = app.test_client()

    def post(xml: str):  # noqa: ANN202
        prepared = wecom.prepare(xml)
        return client.post("/wecom", query_string=prepared.params, data=prepared.body)

    resp = post(kf_event_xml(CORP, DEMO_OPEN_KFID, "ENCwecomapp"))
    assert resp.status_code == 200 and resp.get_data() == b""
    assert queued == [(DEMO_OPEN_KFID, "ENCwecomapp")]
    assert post(kf_event_xml(CORP, DEMO_OPEN_KFID, "")).status_code == 400

    def broker_down(kfid: str, token: str) -> None:
        raise ConnectionError("broker down")

    app.extensions[ENQUEUE] = broker_down
    assert post(kf_event_xml(CORP, DEMO_OPEN_KFID, "ENCagain")).status_code == 503
    with app.app_context():
        db.engine.dispose()

    # Without the 微信客服 channel nothing could read the messages: acknowledged, dropped.
    off = kf_app(tmp_path, pg_url, "http://127.0.0.1:9", kf_token="", **WECOM)
    off.extensions[ENQUEUE] = lambda kfid, token: queued.append((kfid, token))
    prepared = wecom.prepare(kf_event_xml(CORP, DEMO_OPEN_KFID, "ENCoff"))
    resp = off.test_client().post("/wecom", query_string=prepared.params, data=prepared.body)
    assert resp.status_code == 200 and len(queued) == 1
    with off.app_context():
        db.engine.dispose()
