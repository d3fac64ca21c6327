"""A `flask kb reindex` killed midway (SIGKILL) is shown abandoned at once, by the status
endpoint and `flask kb reindex-status`, not `running` until the next run starts; a live
run is never taken for a dead one; and the next run is not blocked by the dead one.

Real parts: PostgreSQL (the reindex lock is an advisory lock that dies with the killed
process's connection), a milvus-lite server, the default embedder, the CLI as a process."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.accounts import users
from app.extensions import db
from tests.conftest import temp_pg_database
from tests.support import BIN, ROOT, indexed_app, run_flask, wait_until

# A CLI process killed midway, a milvus-lite server: not the fast lane.
pytestmark = pytest.mark.slow

STAFF = ("reindexer", "reindex-pass-123")
DOCS = 30


def _write_docs(folder: Path) -> None:
    folder.mkdir(parents=True)
    for i in range(DOCS):
        body = "".join(
            f"\n\n## 第{j}条\n\n第{i}号仓库第{j}条规定：包裹在{j}小时内出库，逾期按{i}元赔付。"
            for j in range(8)
        )
        (folder / f"仓库{i:02d}.md").write_text(f"# 第{i}号仓库{body}\n", encoding="utf-8")


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory, milvus_uri: str) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("reindex-data")
    folder = tmp_path_factory.mktemp("reindex-kb") / "docs"
    _write_docs(folder)
    with temp_pg_database() as url:
        env, app = indexed_app(data_dir, url, milvus_uri, folder)
        with app.app_context():
            users.create_user(*STAFF, role="staff", actor="test")
        engine = sa.create_engine(url)
        yield {"env": env, "app": app, "db": engine}
        engine.dispose()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _signed_in(app: Flask) -> FlaskClient:
    client = app.test_client()
    resp = client.post("/api/auth/login", json={"username": STAFF[0], "password": STAFF[1]})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return client


def _runs(client: FlaskClient) -> list[dict[str, Any]]:
    resp = client.get("/api/knowledge/reindex")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()["runs"]


def kill_reindex_midway(
    env: dict[str, str], runs: Callable[[], list[dict[str, Any]]], done: int
) -> dict[str, Any]:
    """Starts `flask kb reindex --full`, SIGKILLs it once ``runs()`` shows it running with
    ``done`` documents done, and returns that run as it was last seen."""
    proc = subprocess.Popen(
        [str(BIN / "flask"), "--app", "app", "kb", "reindex", "--full"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        run = wait_until(
            lambda: next(
                (r for r in runs() if r["status"] == "running" and r["done"] >= done), None
            ),
            600,
            "the reindex to be under way",
            interval=0.05,
        )
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert run["done"] < run["total"], "the reindex finished before it could be killed"
    return run


def test_a_killed_reindex_is_abandoned_at_once_and_blocks_nothing(kb: dict[str, Any]) -> None:
    client = _signed_in(kb["app"])
    # Every poll of the endpoint checks for dead runs: the live one must stay running.
    run = kill_reindex_midway(kb["env"], lambda: _runs(client), 2)

    # Within seconds (the killed process's database connection closes), not at the next run.
    dead = wait_until(
        lambda: next(r for r in _runs(client) if r["id"] == run["id"] and r["status"] != "running"),
        15,
        "the killed run to be shown as no longer running",
        interval=0.2,
    )
    assert dead["status"] == "abandoned", dead
    assert dead["finished_at"] is not None
    assert "stopped before it finished" in dead["error"]
    status = run_flask(["kb", "reindex-status"], kb["env"])
    assert status.returncode == 0, status.stderr
    line = next(ln for ln in status.stdout.splitlines() if ln.split()[0] == str(run["id"]))
    assert "abandoned" in line and "running" not in line, status.stdout

    # The next run is not blocked by the dead one, and finishes.
    again = run_flask(["kb", "reindex"], kb["env"])
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.startswith(("succeeded", "up_to_date")), again.stdout
    latest = _runs(client)[0]
    assert latest["id"] > run["id"] and latest["status"] in ("succeeded", "up_to_date")
    with kb["db"].connect() as conn:
        running = conn.execute(sa.text("SELECT count(*) FROM reindex_runs WHERE status='running'"))
        assert running.scalar() == 0
