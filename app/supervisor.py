"""`flask serve`: the whole service in the foreground on embedded defaults.

Starts what the configuration does not point elsewhere (a milvus-lite server for a
loopback MILVUS_URI; a WeChat simulator when no WeChat account is configured), applies
migrations, indexes the sample knowledge on first run, then runs the web server, the
workers and the scheduler under one honcho manager: Ctrl-C stops them all.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from honcho.manager import Manager

from app.knowledge import milvus_server
from app.settings import Settings
from app.simulator import DEMO_WECHAT

BIN = Path(sys.executable).parent


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def _wait_port(
    host: str, port: int, proc: subprocess.Popen, what: str, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while not _port_open(host, port):
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with code {proc.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not open {host}:{port} within {timeout:.0f}s")
        time.sleep(0.2)


def _embedded_milvus(settings: Settings) -> subprocess.Popen | None:
    parts = urlsplit(settings.milvus_uri)
    if parts.hostname not in ("127.0.0.1", "localhost") or parts.port is None:
        return None
    if _port_open(parts.hostname, parts.port):
        return None  # already running (a previous serve, or a real Milvus)
    data = settings.data_dir / "milvus"
    data.mkdir(parents=True, exist_ok=True)
    print(f"[serve] starting milvus-lite server on {parts.hostname}:{parts.port} (data in {data})")
    proc = subprocess.Popen(milvus_server.command(data, parts.hostname, parts.port))
    _wait_port(parts.hostname, parts.port, proc, "milvus-lite server")
    return proc


def _flask(*args: str, env: dict[str, str]) -> None:
    subprocess.run([str(BIN / "flask"), "--app", "app", *args], check=True, env=env)


def run_all(
    settings: Settings,
    *,
    host: str,
    port: int,
    web_workers: int,
    llm_workers: int,
    simulator_port: int,
) -> int:
    env = dict(os.environ)
    helpers: list[subprocess.Popen] = []
    prom = settings.data_dir / "prometheus"
    shutil.rmtree(prom, ignore_errors=True)
    prom.mkdir(parents=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(prom)
    env.setdefault("PUBLIC_BASE_URL", f"http://{host}:{port}")
    try:
        if not settings.wechat_configured:
            env.update(DEMO_WECHAT)
            env["WECHAT_API_BASE_URL"] = f"http://127.0.0.1:{simulator_port}"
            print(
                "[serve] no WeChat account configured: demo mode with the WeChat simulator "
                f"on 127.0.0.1:{simulator_port}"
            )
            sim = subprocess.Popen(
                [
                    str(BIN / "flask"),
                    "--app",
                    "app",
                    "wechat",
                    "simulator",
                    "--port",
                    str(simulator_port),
                ],
                env=env,
            )
            helpers.append(sim)
            _wait_port("127.0.0.1", simulator_port, sim, "WeChat simulator")
        milvus = _embedded_milvus(settings)
        if milvus:
            helpers.append(milvus)
        print("[serve] applying database migrations")
        _flask("db", "upgrade", env=env)
        print("[serve] indexing the knowledge base (first run only)")
        _flask("kb", "ingest", "--if-empty", env=env)

        manager = Manager()
        manager.add_process(
            "web",
            f"{BIN / 'gunicorn'} --bind {host}:{port} --workers {web_workers} "
            "--worker-class gthread --threads 8 --timeout 60 --access-logfile - app.wsgi:app",
            env=env,
        )
        celery = f"{BIN / 'celery'} -A app.worker"
        # One model per process, shared by a thread pool: the engine decodes up to
        # LLM_PARALLEL answers together, and the spare threads keep FAQ answers (no model)
        # from waiting behind long generations.
        for i in range(llm_workers):
            manager.add_process(
                "llm" if llm_workers == 1 else f"llm{i + 1}",
                f"{celery} worker -Q llm --pool threads -c {2 * settings.llm_parallel} "
                f"-n llm{i + 1}@%h --loglevel INFO",
                env=env,
            )
        manager.add_process(
            "worker", f"{celery} worker -Q default -c 2 -n default@%h --loglevel INFO", env=env
        )
        manager.add_process(
            "beat",
            f"{celery} beat --loglevel INFO",
            env=env,
        )
        print(
            f"[serve] WeChat callback: http://{host}:{port}/wechat   health: http://{host}:{port}/healthz"
        )
        if not settings.wechat_configured:
            extra = "" if port == 8000 else f" --url http://{host}:{port}/wechat"
            if simulator_port != 9100:
                extra += f" --simulator-url http://127.0.0.1:{simulator_port}"
            command = f".venv/bin/flask --app app wechat simulate{extra}"
            print(f"[serve] try it:  {command} '我的订单还没发货'")
        manager.loop()
        return manager.returncode or 0
    except subprocess.CalledProcessError as exc:
        print(f"[serve] start-up step failed: {exc}", file=sys.stderr)
        return 1
    finally:
        for proc in helpers:
            proc.terminate()
        for proc in helpers:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
