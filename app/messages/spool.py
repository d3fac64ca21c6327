"""Verified customer messages kept on local disk while the database is down.

WeChat retries a callback that gets no reply three times over about fifteen seconds and
then drops the message; a PostgreSQL restart or fail-over takes longer. So a verified
message the store cannot take is written here and acknowledged (async mode: an empty
reply; passive mode: the pending text, the answer then rides on the customer's next
message). A thread in the web process puts the files back through the same intake as a
live callback once the store answers again, oldest first, so each customer's questions
keep their order; the MsgId deduplicates a retry of WeChat's that got through meanwhile.

One file per message, written to a temporary name, fsynced and renamed into place, so a
crash leaves either the whole message or nothing. A drainer claims a file by renaming it
(atomic, so two web processes never take the same one); a claim whose process died is
taken back after ``STALE_CLAIM_S``. The spool lives on each web host's disk
(``DATA_DIR/spool``): every host drains its own.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)

#: What the store raises when it cannot be reached (not when it refuses a row).
STORE_DOWN = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
)
#: What makes the drain wait and try again: the store down, or not migrated yet (a
#: process that starts before `flask db upgrade` has run finds no tables).
STORE_NOT_READY = (*STORE_DOWN, sa_exc.ProgrammingError)
#: A claim older than this belongs to a drainer that died: the file is taken back.
STALE_CLAIM_S = 120.0
#: How often the drainer tries the store while files wait.
DRAIN_EVERY_S = 2.0

_SUFFIX, _CLAIMED, _BROKEN = ".json", ".taking", ".broken"


def directory(data_dir: Path) -> Path:
    return data_dir / "spool"


def keep(spool: Path, channel: str, fields: dict[str, str], delivery: str) -> Path:
    """Writes one message durably; returns its file. Names sort in arrival order."""
    spool.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    record = {"channel": channel, "fields": fields, "delivery": delivery, "kept_at": time.time()}
    tmp = spool / f".{name}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(record, fh, ensure_ascii=False)
        fh.flush()
        os.fsync(fh.fileno())
    final = spool / f"{name}{_SUFFIX}"
    os.rename(tmp, final)
    _sync_dir(spool)
    return final


def waiting(spool: Path) -> int:
    """Messages in the spool not yet back in the store (claimed ones included)."""
    if not spool.is_dir():
        return 0
    return sum(1 for p in spool.iterdir() if p.suffix in (_SUFFIX, _CLAIMED))


def drain(spool: Path, take: Callable[[dict[str, Any]], None]) -> int:
    """Hands each waiting message to ``take`` (the intake), oldest first; returns how many
    were taken. Stops at the first one the store still cannot take: it stays, and so do
    the customer's later ones behind it."""
    if not spool.is_dir():
        return 0
    _reclaim_stale(spool)
    taken = 0
    for path in sorted(spool.glob(f"*{_SUFFIX}")):
        claimed = path.with_suffix(f".{os.getpid()}{_CLAIMED}")
        try:
            os.rename(path, claimed)
        except FileNotFoundError:  # another web process took it
            continue
        os.utime(claimed)  # the claim's age, for _reclaim_stale
        try:
            record = json.loads(claimed.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.error("spooled message %s is unreadable (%s); set aside", path.name, exc)
            os.rename(claimed, path.with_suffix(_BROKEN))
            continue
        try:
            take(record)
        except STORE_NOT_READY as exc:
            os.rename(claimed, path)  # not yet: try again later, in the same order
            log.warning("the store cannot take spooled messages yet (%s)", type(exc).__name__)
            return taken
        except Exception:
            log.exception("spooled message %s could not be taken in; set aside", path.name)
            os.rename(claimed, path.with_suffix(_BROKEN))
            continue
        claimed.unlink()
        taken += 1
    if taken:
        log.info("took %d spooled messages back into the store", taken)
    return taken


def _reclaim_stale(spool: Path) -> None:
    now = time.time()
    for path in spool.glob(f"*{_CLAIMED}"):
        try:
            if now - path.stat().st_mtime > STALE_CLAIM_S:
                os.rename(path, spool / (path.name.split(".", 1)[0] + _SUFFIX))
        except FileNotFoundError:
            continue


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Drainer:
    """One thread per web process that runs ``drain`` while the spool holds messages and
    ends when it is empty; ``wake`` starts it again."""

    def __init__(self, spool: Path, take: Callable[[dict[str, Any]], None]) -> None:
        self.spool = spool
        self.take = take
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="spool-drainer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while waiting(self.spool):
            try:
                drain(self.spool, self.take)
            except Exception:  # noqa: BLE001 - the thread must outlive a bad pass
                log.exception("spool drain failed; trying again")
            if waiting(self.spool):
                time.sleep(DRAIN_EVERY_S)
