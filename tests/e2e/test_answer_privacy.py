"""Personal numbers a customer types never rest in the database or the logs, and the answer
pipeline remembers the conversation for the next message."""

from __future__ import annotations

import uuid

import pytest

from app.simulator.callback_client import CallbackClient
from tests.e2e.conftest import Service
from tests.support import WECHAT, wait_until

pytestmark = pytest.mark.slow

PHONE, ID_NUMBER = "13812345678", "110105199003078712"


def test_phone_and_id_numbers_are_masked_in_rows_and_logs(service: Service) -> None:
    client = CallbackClient(service.url + "/wechat", WECHAT["token"], WECHAT["app_id"])
    openid = f"o_{uuid.uuid4().hex[:12]}"
    text = f"我的手机号{PHONE}，身份证{ID_NUMBER}，下单后多久发货？"
    xml = client.text(openid, text)
    resp = client.post(xml)
    assert resp.status_code == 200
    # An FAQ question: answered in the web tier at once, as the reply to this request.
    assert "48小时" in resp.text and PHONE not in resp.text and ID_NUMBER not in resp.text
    msg_id = xml.split("<MsgId>")[1].split("</MsgId>")[0]

    def answered() -> bool:
        status = service.scalar("SELECT status FROM inbound_messages WHERE dedup_key=:k", k=msg_id)
        return status in ("answered", "failed")

    wait_until(answered, 300, "the message answered")
    stored = str(
        service.scalar("SELECT content FROM inbound_messages WHERE dedup_key=:k", k=msg_id)
    )
    assert PHONE not in stored and ID_NUMBER not in stored
    assert "138****5678" in stored and "下单后多久发货" in stored
    replies = service.scalar(
        "SELECT string_agg(r.content, '') FROM outbound_replies r "
        "JOIN inbound_messages m ON m.id = r.inbound_id WHERE m.dedup_key=:k",
        k=msg_id,
    )
    assert replies and PHONE not in str(replies)
    remembered = service.scalar(
        "SELECT question FROM conversation_turns WHERE customer=:c", c=f"wechat:{openid}"
    )
    assert remembered and PHONE not in str(remembered) and "138****5678" in str(remembered)
    sent = [m["content"] for m in service.sim.sent if m.get("touser") == openid]
    assert all(PHONE not in s and ID_NUMBER not in s for s in sent)
    for process in ("e2e-web", "e2e-worker"):
        log = service.processes.log(process)
        assert PHONE not in log and ID_NUMBER not in log, process
