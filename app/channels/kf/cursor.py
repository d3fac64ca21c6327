"""The kf/sync_msg cursor of each 微信客服 account, in the database, read by one process
at a time.

Without a stored cursor sync_msg starts again three days back (peers answered history);
two readers of one cursor (two callbacks a second apart) get the same page and answer it
twice. So each account (open_kfid) has one row (KfCursor) and one reader at a time, across
processes and machines: a PostgreSQL advisory lock on its own connection (a file lock with
SQLite; app/store/locks.py), held while the pages are read; it vanishes with a killed
holder's connection.

A page's ``next_cursor`` is stored *before* the page's messages are taken in, together
with those messages (``pending``), in one commit: a reader killed while taking them in
leaves them to the next reader, which takes them in first (deduplicated by msgid) and
never asks WeChat for that page again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.extensions import db
from app.store import KfCursor
from app.store.locks import named_lock


class ReaderBusy(Exception):
    """Another process is reading this account's messages: try again later (its pages
    hold every message up to when it finishes; what arrives later the retry reads)."""


def lock_name(open_kfid: str) -> str:
    return f"kf-sync-{open_kfid}"


@contextmanager
def one_reader(open_kfid: str, lock_dir: Path, wait_s: float) -> Iterator[None]:
    """Holds the account's reader lock for the block, waiting up to ``wait_s`` for another
    reader to finish; then raises ReaderBusy. Waiting (rather than skipping at once)
    matters: a callback that arrives while another reader is on its last page notifies of
    messages that reader may not have seen, so this one must read after it."""
    deadline = time.monotonic() + wait_s
    pause = 0.05
    while True:
        with named_lock(lock_name(open_kfid), lock_dir, wait=False) as got:
            if got:
                yield
                return
        left = deadline - time.monotonic()
        if left <= 0:
            raise ReaderBusy(f"another process reads 微信客服 account {open_kfid}")
        time.sleep(min(pause, left))
        pause = min(pause * 2, 0.5)


@dataclass(frozen=True)
class Position:
    """Where the account's reading stands: the cursor to ask from, and the messages of the
    last page still to take in (left by a reader that did not finish)."""

    cursor: str = ""
    pending: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0


def load(open_kfid: str) -> Position:
    """The stored position, read afresh from the database (hold the reader lock)."""
    row = db.session.get(KfCursor, open_kfid, populate_existing=True)
    position = Position() if row is None else _position(row)
    db.session.commit()  # end the read: the lock, not a transaction, keeps readers apart
    return position


def advance(open_kfid: str, next_cursor: str, pending: list[dict[str, Any]]) -> None:
    """Stores a page's cursor and the messages of it still to take in, in one commit."""
    row = db.session.get(KfCursor, open_kfid)
    if row is None:
        row = KfCursor(open_kfid=open_kfid, pages=0)
        db.session.add(row)
    row.cursor = next_cursor
    row.pending = json.dumps(pending, ensure_ascii=False) if pending else ""
    row.pages = (row.pages or 0) + 1
    db.session.commit()


def taken(open_kfid: str) -> None:
    """Every pending message was taken in."""
    row = db.session.get(KfCursor, open_kfid)
    if row is not None and row.pending:
        row.pending = ""
        db.session.commit()


def _position(row: KfCursor) -> Position:
    pending: list[dict[str, Any]] = []
    if row.pending:
        loaded = json.loads(row.pending)
        pending = [m for m in loaded if isinstance(m, dict)] if isinstance(loaded, list) else []
    return Position(row.cursor or "", pending, row.pages or 0)
