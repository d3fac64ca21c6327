"""The spool that keeps verified messages while the database is down (app/messages/spool.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from app.messages import spool


def _fields(i: int) -> dict[str, str]:
    return {"FromUserName": f"o_{i}", "MsgId": str(1000 + i), "Content": f"问题{i}"}


def test_messages_come_back_oldest_first_and_leave_the_spool(tmp_path: Path) -> None:
    for i in range(5):
        spool.keep(tmp_path, "wechat", _fields(i), "custom")
    assert spool.waiting(tmp_path) == 5
    taken: list[str] = []
    assert spool.drain(tmp_path, lambda r: taken.append(r["fields"]["MsgId"])) == 5
    assert taken == ["1000", "1001", "1002", "1003", "1004"]
    assert spool.waiting(tmp_path) == 0
    assert list(tmp_path.iterdir()) == []


def test_a_store_still_down_keeps_the_message_and_those_behind_it(tmp_path: Path) -> None:
    for i in range(3):
        spool.keep(tmp_path, "wecom", _fields(i), "custom")
    calls: list[str] = []

    def down(record: dict) -> None:
        calls.append(record["fields"]["MsgId"])
        raise OperationalError("INSERT", {}, Exception("connection refused"))

    assert spool.drain(tmp_path, down) == 0
    assert calls == ["1000"]  # the later ones wait behind it: per-customer order holds
    assert spool.waiting(tmp_path) == 3
    taken: list[str] = []
    assert spool.drain(tmp_path, lambda r: taken.append(r["fields"]["MsgId"])) == 3
    assert taken == ["1000", "1001", "1002"]
    assert taken and spool.waiting(tmp_path) == 0


def test_a_record_that_cannot_be_taken_is_set_aside_not_retried_forever(tmp_path: Path) -> None:
    spool.keep(tmp_path, "wechat", _fields(1), "custom")
    (tmp_path / "00000000000000000001-1-deadbeef.json").write_text("{not json")

    def reject(record: dict) -> None:
        raise ValueError("no such channel")

    assert spool.drain(tmp_path, reject) == 0
    assert spool.waiting(tmp_path) == 0
    assert len(list(tmp_path.glob("*.broken"))) == 2


def test_a_claim_of_a_dead_drainer_is_taken_back(tmp_path: Path) -> None:
    kept = spool.keep(tmp_path, "wechat", _fields(7), "passive")
    claimed = kept.with_suffix(".99999.taking")
    os.rename(kept, claimed)  # a drainer that died mid-take
    assert spool.drain(tmp_path, lambda r: None) == 0  # a fresh claim is left alone
    old = time.time() - spool.STALE_CLAIM_S - 1
    os.utime(claimed, (old, old))
    taken: list[dict] = []
    assert spool.drain(tmp_path, taken.append) == 1
    assert taken[0]["delivery"] == "passive" and taken[0]["fields"]["MsgId"] == "1007"


def test_no_partial_file_is_ever_visible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(spool.os, "rename", crash)
    with pytest.raises(OSError):
        spool.keep(tmp_path, "wechat", _fields(1), "custom")
    assert spool.waiting(tmp_path) == 0  # only the temporary file, which no drainer reads
