"""Statuses are StrEnums whose values are the strings the database has always held: a
renamed value would strand every stored row, so the values are pinned here."""

from __future__ import annotations

import json
from enum import StrEnum

import pytest

from app.store import (
    AnswerOutcome,
    DocumentStatus,
    HandoffStatus,
    MessageStatus,
    ReindexStatus,
    ReplyStatus,
)

STORED = {
    MessageStatus: {"received", "processing", "ready", "answered", "failed", "ignored", "handoff"},
    AnswerOutcome: {
        "faq",
        "generated",
        "refused",
        "replied",
        "handed_off",
        "failed",
        "rate_limited",
        "busy",
    },
    ReplyStatus: {"pending", "sent", "failed"},
    DocumentStatus: {"queued", "processing", "indexed", "failed", "superseded"},
    ReindexStatus: {"running", "succeeded", "up_to_date", "failed", "abandoned"},
    HandoffStatus: {"open", "taken", "closed"},
}


@pytest.mark.parametrize("kind", list(STORED), ids=lambda k: k.__name__)
def test_values_are_the_stored_strings(kind: type[StrEnum]) -> None:
    assert {m.value for m in kind} == STORED[kind]


def test_a_member_reads_as_its_string_everywhere() -> None:
    ready = MessageStatus.READY
    assert ready == "ready" and str(ready) == "ready" and f"{ready:>6}" == " ready"
    assert json.dumps({"status": ready}) == '{"status": "ready"}'
    assert {"ready": 1}[ready] == 1
