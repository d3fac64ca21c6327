"""The sweeper and a message whose attempts are spent (app/messages/sweeper.py): failed, and
its customer told, when its answer did not go out; answered, and nothing more sent, when
every piece had gone out and only the worker's last step (marking it) was lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.extensions import db
from app.messages import sweeper
from app.messages.answering import FAILED_TEXT
from app.store import InboundMessage, OutboundReply
from tests.integration.test_wechat_callback import _app

MAX_ATTEMPTS = 3


class RecordingAPI:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send_text(self, customer: str, text: str) -> None:
        self.sent.append((customer, text))


@pytest.mark.parametrize(
    ("reply_states", "status", "told"),
    [
        (["sent", "sent"], "answered", False),  # killed between the last send and the mark
        (["sent", "pending"], "failed", False),  # its own answer was stored: not resent
        ([], "failed", True),  # nothing stored: the customer is told it failed
    ],
)
def test_a_spent_message_is_answered_only_when_every_piece_went_out(
    tmp_path: Path, reply_states: list[str], status: str, told: bool
) -> None:
    app = _app(tmp_path, answer_max_attempts=MAX_ATTEMPTS, answer_claim_lease_s=10)
    api = RecordingAPI()
    with app.app_context():
        lapsed = datetime.now(UTC) - timedelta(minutes=5)
        msg = InboundMessage(
            channel="wechat",
            dedup_key="spent",
            account="gh_test",
            customer="o_spent",
            msg_type="text",
            content="退货运费谁出？",
            status="processing",
            attempts=MAX_ATTEMPTS,
            claimed_at=lapsed,
            claimed_by="elsewhere/1/1",
        )
        db.session.add(msg)
        db.session.flush()
        for seq, state in enumerate(reply_states):
            db.session.add(
                OutboundReply(
                    inbound_id=msg.id,
                    seq=seq,
                    content=f"第{seq + 1}段",
                    status=state,
                    sent_at=lapsed if state == "sent" else None,
                )
            )
        db.session.commit()
        msg_id = msg.id
        requeued: list[int] = []

        sweeper.sweep(app.extensions["settings"], requeued.append, api=lambda _m: api)

        db.session.remove()
        row = db.session.get(InboundMessage, msg_id)
        assert row is not None and row.status == status
        assert requeued == []  # spent: never queued again
        assert api.sent == ([("o_spent", FAILED_TEXT)] if told else [])
