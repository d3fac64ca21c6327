"""Helpers for tests that run the real service: processes, ports, polling with deadlines."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from unittest import mock

import requests

from app import layout

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TEST_MODEL = ROOT / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
WECHAT = {"token": "testtoken123", "app_id": "wx0123456789abcdef", "secret": "testsecret"}

T = TypeVar("T")

# Every stack of services a test starts gets a Redis database of its own, as its broker. A
# worker left running on a shared database takes tasks meant for another stack (another
# PostgreSQL database, another collection, no WeChat settings) and those tasks are lost.
REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13").rsplit("/", 1)[0]
BROKER_DBS = {
    "e2e": 13,
    "failures": 12,
    "delivery": 11,
    "dify": 10,
    "knowledge": 9,
    "wecom": 8,
    "difyapp": 7,
    "conn": 6,
    "chaos": 5,
    "kf": 4,
    "loop": 3,
}


def broker_url(stack: str) -> str:
    """An emptied Redis database for ``stack`` (``TEST_REDIS_DB_<STACK>`` overrides it)."""
    import redis

    db = int(os.environ.get(f"TEST_REDIS_DB_{stack.upper()}", BROKER_DBS[stack]))
    url = f"{REDIS_BASE}/{db}"
    redis.Redis.from_url(url).flushdb()
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(fn: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Polls `fn` until it returns something truthy; fails with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
            last = value
        except Exception as exc:  # not ready yet
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Processes:
    """Child processes of a test session, each logging to a file shown when a test fails."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def run_flask(
    args: list[str], env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "flask"), "--app", "app", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def migrate_and_ingest(env: dict[str, str]) -> None:
    """`flask db upgrade` and `flask kb ingest` (KNOWLEDGE_DIR) with ``env``, as a deploy does."""
    for step in (["db", "upgrade"], ["kb", "ingest"]):
        done = run_flask(step, env)
        assert done.returncode == 0, done.stdout + done.stderr


def indexed_app(
    data_dir: Path, database_url: str, milvus_uri: str, knowledge_dir: Path, **overrides: object
) -> tuple[dict[str, str], object]:
    """A database migrated and ``knowledge_dir`` indexed into a fresh collection by the CLI,
    as a deploy does; returns that environment and the app (in this process) on it."""
    import uuid

    from app import create_app
    from app.settings import load_settings

    collection = f"kb_{uuid.uuid4().hex[:10]}"
    env = base_env(
        data_dir,
        DATABASE_URL=database_url,
        MILVUS_URI=milvus_uri,
        MILVUS_COLLECTION=collection,
        KNOWLEDGE_DIR=str(knowledge_dir),
        WECHAT_INSTANT_FAQ="false",
    )
    migrate_and_ingest(env)
    settings = load_settings(
        data_dir=data_dir,
        database_url=database_url,
        milvus_uri=milvus_uri,
        milvus_collection=collection,
        wechat_instant_faq=False,
        **overrides,
    )
    return env, create_app(settings)


#: FAQ_JUDGE_THRESHOLD for the test model (see base_env).
TEST_JUDGE_THRESHOLD = "0.35"


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WECHAT_", "LLM_", "MILVUS_", "PROMETHEUS_", "FAQ_"))
    }
    env.update(
        DATA_DIR=str(data_dir),
        LLM_MODEL_PATH=str(TEST_MODEL),
        LLM_TEMPERATURE="0",
        LLM_SEED="7",
        LLM_MAX_TOKENS="160",
        # The judge's scale is the chat model's: the 0.5B test model says "能" less readily
        # than the quick-start 1.5B the default (0.55) was measured with (bench/RESULTS.md).
        FAQ_JUDGE_THRESHOLD=TEST_JUDGE_THRESHOLD,
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


def healthy(url: str) -> bool:
    return requests.get(url + "/healthz", timeout=5).status_code == 200


def worker_args(
    name: str,
    concurrency: int = 1,
    pool: str = "prefork",
    queues: tuple[str, ...] = (layout.LLM_QUEUE, layout.DEFAULT_QUEUE),
) -> list[str]:
    """The process table's Celery worker (app/layout.py), on both queues unless told, with
    the test's pool and concurrency (named per stack: control replies never mix across
    stacks)."""
    argv = layout.celery_worker(
        queues, name=name, pool=pool, concurrency=concurrency, loglevel="INFO"
    )
    return layout.resolve(argv, BIN)


def start_service(
    processes: Processes,
    env: dict[str, str],
    name: str,
    *,
    web_workers: int = 2,
    concurrency: int = 1,
    port: int | None = None,
    pool: str = "prefork",
    queues: tuple[str, ...] = (layout.LLM_QUEUE, layout.DEFAULT_QUEUE),
) -> str:
    """Migrates, indexes the knowledge, starts the process table's web role (app/layout.py)
    and a Celery worker on ``queues`` (`worker_args`), and returns the URL once /healthz says
    200 and every web process holds its FAQ table (instant answers)."""
    from app.settings import load_settings

    migrate_and_ingest(env)
    port = port or free_port()
    with mock.patch.dict(os.environ, env, clear=True):
        settings = load_settings()  # as the web processes will read ``env``
    web = layout.web(settings, host="127.0.0.1", port=port, workers=web_workers)
    processes.start(f"{name}-web", layout.resolve(web, BIN), env)
    processes.start(f"{name}-worker", worker_args(name, concurrency, pool, queues), env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: healthy(url), 120, "healthz 200")
    except TimeoutError as exc:
        raise AssertionError(
            f"{name} did not become healthy:\n" + processes.log(f"{name}-web")[-3000:]
        ) from exc
    instant = env.get("WECHAT_INSTANT_FAQ", "true").lower() not in ("0", "false", "no", "off")
    if instant and env.get("ANSWER_BACKEND", "pipeline") == "pipeline":
        # Each web process reads its table in the background, and until then sends FAQ
        # questions the worker's way (a test of instant answers would see none).
        wait_until(
            lambda: processes.log(f"{name}-web").count("FAQ table ready") >= web_workers,
            120,
            "the FAQ table in every web process",
        )
    return url
