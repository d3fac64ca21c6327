"""Reading a 微信客服 account's new messages: every page of kf/sync_msg until ``has_more`` is
0, from the stored cursor, by one process at a time (cursor.py).

Each page's cursor is stored before its messages are taken in (with them, so a killed
reader loses none); only what the bot acts on is taken in: customers' messages (origin
3) and ``enter_session`` events (origin 4, for the welcome). Servicers' messages (origin 5,
including, some report, the API's own replies) and other system events are skipped: a
bot that reads them back answers itself.

``take`` is the caller's intake of one message. It must be quick (store and queue, never
answer inline: the account stays locked meanwhile) and idempotent by ``msgid``: after a
crash a page's messages are taken in again, and WeChat itself repeats old messages.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.channels.kf import cursor
from app.channels.kf.api import KfAPI, Origin
from app.channels.kf.fields import VOICE_FORMAT, account, event_type, origin

log = logging.getLogger(__name__)

Take = Callable[[dict[str, Any]], None]

#: Pages one sync reads at most; the rest waits for the next callback (a cursor WeChat
#: keeps answering ``has_more`` for without moving would otherwise never end).
MAX_PAGES = 200


@dataclass
class SyncResult:
    pages: int = 0
    #: The messages taken in, in order (a killed reader's leftovers first).
    taken: list[dict[str, Any]] = field(default_factory=list)
    #: How many a page held that were not taken in, by why: servicer, system, duplicate,
    #: other_account, malformed.
    skipped: Counter[str] = field(default_factory=Counter)
    #: Of ``taken``, how many a reader before this one had stored but not taken in.
    resumed: int = 0


def why_skipped(msg: dict[str, Any], open_kfid: str) -> str | None:
    """None for a message the bot acts on, else the reason it is not taken in."""
    if not msg.get("msgid"):
        return "malformed"
    if account(msg) and account(msg) != open_kfid:
        return "other_account"
    source = origin(msg)
    if source == Origin.CUSTOMER:
        return None
    if source == Origin.SYSTEM:
        return None if event_type(msg) == "enter_session" else "system"
    if source == Origin.SERVICER:
        return "servicer"
    return "malformed"


def sync_account(
    api: KfAPI,
    open_kfid: str,
    take: Take | None,
    *,
    token: str = "",
    lock_dir: Path,
    limit: int = 1000,
    wait_s: float = 30.0,
    max_pages: int = MAX_PAGES,
) -> SyncResult:
    """Reads every new message of the account; ``take`` gets each one the bot acts on.
    Raises cursor.ReaderBusy when another reader holds the account past ``wait_s``, and
    WeChatAPIError when sync_msg fails: the stored position is kept, so a retry resumes."""
    result = SyncResult()
    with cursor.one_reader(open_kfid, lock_dir, wait_s):
        position = cursor.load(open_kfid)
        if position.pending:
            log.warning(
                "kf %s: taking in %d message(s) a reader before stored but did not finish",
                open_kfid,
                len(position.pending),
            )
            _take_all(position.pending, take, result)
            result.resumed = len(position.pending)
            cursor.taken(open_kfid)
        current, seen = position.cursor, {str(m.get("msgid")) for m in position.pending}
        while result.pages < max_pages:
            page = api.sync_msg(
                open_kfid, cursor=current, token=token, limit=limit, voice_format=VOICE_FORMAT
            )
            result.pages += 1
            keep = _kept(page.msg_list, open_kfid, seen, result)
            next_cursor = page.next_cursor or current
            cursor.advance(open_kfid, next_cursor, keep)  # before anything is taken in
            _take_all(keep, take, result)
            cursor.taken(open_kfid)
            if not page.has_more:
                break
            if next_cursor == current and not page.msg_list:
                log.warning("kf %s: has_more without a new cursor; stopping here", open_kfid)
                break
            current = next_cursor
        else:
            log.warning(
                "kf %s: stopped after %d pages; the next sync goes on", open_kfid, max_pages
            )
    if result.skipped:
        log.info("kf %s: skipped %s", open_kfid, dict(result.skipped))
    return result


def _kept(
    msg_list: list[dict[str, Any]], open_kfid: str, seen: set[str], result: SyncResult
) -> list[dict[str, Any]]:
    """The page's messages to take in, oldest first; WeChat's repeats of a msgid within
    this sync skipped (repeats across syncs are the intake's to drop)."""
    keep = []
    for msg in sorted(msg_list, key=_send_time):
        reason = why_skipped(msg, open_kfid)
        if reason is None and str(msg["msgid"]) in seen:
            reason = "duplicate"
        if reason is not None:
            result.skipped[reason] += 1
            continue
        seen.add(str(msg["msgid"]))
        keep.append(msg)
    return keep


def _take_all(msgs: list[dict[str, Any]], take: Take | None, result: SyncResult) -> None:
    for msg in msgs:
        if take is not None:
            take(msg)
        result.taken.append(msg)


def _send_time(msg: dict[str, Any]) -> int:
    try:
        return int(msg.get("send_time") or 0)
    except (TypeError, ValueError):
        return 0
