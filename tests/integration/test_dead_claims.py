"""A worker starting on a host takes back the claims of that host's dead workers at once
(app/messages/claims.py), and leaves every other claim to its holder or its lease."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from app.extensions import db
from app.messages import claims
from app.store import InboundMessage
from tests.integration.test_wechat_callback import _app


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # reaped: no process has it now (pids are not reused this fast)


def test_only_the_claims_of_dead_processes_of_this_host_are_taken_back(tmp_path: Path) -> None:
    app = _app(tmp_path)
    host = socket.gethostname()
    holders = {
        "dead here": f"{host}/{_dead_pid()}/1",
        "an earlier process with our pid": f"{host}/{os.getpid()}/1",
        "ourselves": claims.holder(),
        "alive here": f"{host}/{os.getppid()}/1",
        "another host": f"elsewhere/{_dead_pid()}/1",
        "unnamed (before migration 0012)": "",
    }
    with app.app_context():
        ids = {}
        for i, (name, holder) in enumerate(holders.items()):
            row = InboundMessage(
                channel="wechat",
                dedup_key=f"m{i}",
                account="gh_test",
                customer=f"o_{i}",
                msg_type="text",
                content="在吗",
                status="processing",
                claimed_by=holder,
            )
            db.session.add(row)
            db.session.flush()
            ids[name] = row.id
        db.session.commit()

        queued: list[int] = []
        released = claims.release_dead(queued.append)

        expected = {ids["dead here"], ids["an earlier process with our pid"]}
        assert set(released) == expected and set(queued) == expected
        db.session.remove()
        status = {r.id: r.status for r in db.session.scalars(db.select(InboundMessage))}
        for name, message_id in ids.items():
            want = "received" if message_id in expected else "processing"
            assert status[message_id] == want, name
        # A second worker starting now finds nothing more to take.
        assert claims.release_dead(queued.append) == []
