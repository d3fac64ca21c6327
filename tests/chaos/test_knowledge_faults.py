"""Searches while the knowledge base breaks under them: a reindex killed midway, and the
milvus-lite server killed and started again.

Real parts: a milvus-lite server of this module's own (so it can be killed), PostgreSQL,
the default embedder, `flask kb reindex` as a process, the search API of the staff
pages. Each prints searches sent, answered with hits, refused with a clear 503, and
failed otherwise (a 500, a traceback, an empty answer).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.accounts import users
from app.extensions import db
from app.knowledge import milvus_server
from tests.conftest import temp_pg_database
from tests.knowledge.test_reindex_interrupted import _write_docs, kill_reindex_midway
from tests.support import Processes, free_port, indexed_app, wait_until

pytestmark = pytest.mark.slow

STAFF = ("chaos-kb", "chaos-kb-pass-123")
MILVUS = "kbfault-milvus"
QUERY = "第7号仓库的包裹多久出库？"


@dataclass
class Kb:
    env: dict[str, str]
    app: Flask
    processes: Processes
    milvus_command: list[str]
    milvus_port: int

    def signed_in(self) -> FlaskClient:
        client = self.app.test_client()
        resp = client.post("/api/auth/login", json={"username": STAFF[0], "password": STAFF[1]})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        client.environ_base["HTTP_X_CSRF_TOKEN"] = resp.get_json()["csrf_token"]
        return client

    def start_milvus(self) -> None:
        self.processes.start(MILVUS, self.milvus_command, env=dict(os.environ))

        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.milvus_port)) == 0

        wait_until(listening, 60, "the milvus-lite server")


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory, processes: Processes) -> Iterator[Kb]:
    port = free_port()
    command = milvus_server.command(tmp_path_factory.mktemp("kbfault-milvus"), "127.0.0.1", port)
    folder = tmp_path_factory.mktemp("kbfault-kb") / "docs"
    _write_docs(folder)
    with temp_pg_database() as url:
        holder = Kb({}, Flask(__name__), processes, command, port)
        holder.start_milvus()
        uri = f"http://127.0.0.1:{port}"
        env, app = indexed_app(tmp_path_factory.mktemp("kbfault-data"), url, uri, folder)
        holder.env, holder.app = env, app  # type: ignore[assignment]
        with app.app_context():
            users.create_user(*STAFF, role="staff", actor="test")
        try:
            yield holder
        finally:
            processes.stop(MILVUS)
            with app.app_context():
                db.session.remove()
                db.engine.dispose()


class Searches:
    """Searches in a thread until stopped, tallying what each got."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.tally: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Searches:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        while not self._stop.is_set():
            resp = self.client.post("/api/knowledge/search", json={"query": QUERY, "top_k": 3})
            body: Any = resp.get_json(silent=True)
            if resp.status_code == 200 and body and body.get("hits"):
                self.tally["hits"] += 1
            elif resp.status_code == 503 and body and body.get("error"):
                self.tally["refused"] += 1
            else:
                self.tally["failed"] += 1
                self.failures.append(f"{resp.status_code} {resp.get_data(as_text=True)[:200]}")
            if resp.status_code != 200:
                self._stop.wait(0.2)  # no busy loop against a server that is down

    def report(self) -> None:
        print(
            f"searches {sum(self.tally.values())}, with hits {self.tally['hits']}, "
            f"refused (503) {self.tally['refused']}, failed {self.tally['failed']}"
        )


def _runs(client: FlaskClient) -> list[dict[str, Any]]:
    resp = client.get("/api/knowledge/reindex")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()["runs"]


def test_searches_keep_their_answers_while_a_reindex_is_killed_midway(kb: Kb) -> None:
    staff = kb.signed_in()
    with Searches(kb.signed_in()) as searches:
        kill_reindex_midway(kb.env, lambda: _runs(staff), 2)
        after = searches.tally["hits"]
        wait_until(lambda: searches.tally["hits"] >= after + 5, 60, "searches after the kill")
    searches.report()
    assert searches.tally["hits"] >= 10
    # The collection being rebuilt is not the one served (an alias moves only at the end).
    assert searches.failures == [] and searches.tally["refused"] == 0, searches.failures


def test_searches_come_back_by_themselves_after_milvus_is_killed_and_restarted(kb: Kb) -> None:
    with Searches(kb.signed_in()) as searches:
        wait_until(lambda: searches.tally["hits"] >= 3, 60, "searches before the kill")
        kb.processes.stop(MILVUS, sig=signal.SIGKILL)
        # Within MILVUS_TIMEOUT_S each, not after pymilvus's minutes of retries.
        wait_until(lambda: searches.tally["refused"] >= 3, 60, "searches refused while down")
        kb.start_milvus()
        before = searches.tally["hits"]
        # The same web process, not restarted, finds the server again.
        wait_until(lambda: searches.tally["hits"] >= before + 5, 120, "searches after restart")
    searches.report()
    assert searches.failures == [], searches.failures  # a clear 503 while down, never a 500
