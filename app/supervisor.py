"""`flask serve`: the whole service in the foreground on embedded defaults.

Starts what the configuration does not point elsewhere (a milvus-lite server for a
loopback MILVUS_URI; a WeChat simulator when no WeChat account is configured, and a
微信客服 simulator beside it when no 微信客服 account is either), applies
migrations, indexes the sample knowledge on first run, then runs the web server, the
workers and the scheduler under one honcho manager: Ctrl-C stops them all. Every command
comes from the process table, app/layout.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from honcho.manager import Manager

from app import layout
from app.settings import Settings
from app.simulator import DEMO_KF, DEMO_KF_SIMULATOR_PORT, DEMO_WECHAT

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
    milvus = layout.milvus_lite(settings)
    address = layout.milvus_address(settings)
    if milvus is None or address is None:
        return None
    if _port_open(*address):
        return None  # already running (a previous serve, or a real Milvus)
    host, port = address
    data = settings.data_dir / "milvus"
    data.mkdir(parents=True, exist_ok=True)
    print(f"[serve] starting milvus-lite server on {host}:{port} (data in {data})")
    proc = subprocess.Popen(layout.resolve(milvus.argv, BIN))
    _wait_port(host, port, proc, "milvus-lite server")
    return proc


def _kf_simulator(env: dict[str, str], port: int) -> subprocess.Popen:
    """Demo mode's 微信客服: its simulator (which notifies our /kf), and the service's
    KF_* settings pointed at it (``env``, which every process of the service gets)."""
    env.update(DEMO_KF)
    env["KF_API_BASE_URL"] = f"http://127.0.0.1:{port}"
    print(f"[serve] no 微信客服 account configured: its simulator on 127.0.0.1:{port}")
    proc = subprocess.Popen(layout.resolve(layout.kf_simulator(port).argv, BIN), env=env)
    _wait_port("127.0.0.1", port, proc, "微信客服 simulator")
    return proc


def run_all(
    settings: Settings,
    *,
    host: str,
    port: int,
    web_workers: int,
    llm_workers: int,
    simulator_port: int,
    kf_simulator_port: int = DEMO_KF_SIMULATOR_PORT,
) -> int:
    env = dict(os.environ)
    helpers: list[subprocess.Popen] = []
    prom = settings.data_dir / "prometheus"
    shutil.rmtree(prom, ignore_errors=True)
    prom.mkdir(parents=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(prom)
    env.setdefault("PUBLIC_BASE_URL", f"http://{host}:{port}")
    shape = layout.Shape(host=host, port=port, web_workers=web_workers, llm_workers=llm_workers)
    try:
        if not settings.wechat_configured:
            env.update(DEMO_WECHAT)
            env["WECHAT_API_BASE_URL"] = f"http://127.0.0.1:{simulator_port}"
            print(
                "[serve] no WeChat account configured: demo mode with the WeChat simulator "
                f"on 127.0.0.1:{simulator_port}"
            )
            sim = layout.simulator(simulator_port)
            helpers.append(subprocess.Popen(layout.resolve(sim.argv, BIN), env=env))
            _wait_port("127.0.0.1", simulator_port, helpers[-1], "WeChat simulator")
            if not settings.kf_configured:
                helpers.append(_kf_simulator(env, kf_simulator_port))
        milvus = _embedded_milvus(settings)
        if milvus:
            helpers.append(milvus)
        for step in layout.setup_steps():
            print(f"[serve] {step.why}")
            subprocess.run(layout.resolve(step.argv, BIN), check=True, env=env)

        manager = Manager()
        for proc in layout.processes(settings, shape):
            manager.add_process(proc.name, proc.command(BIN), env=env)
        print(
            f"[serve] WeChat callback: http://{host}:{port}/wechat   health: http://{host}:{port}/healthz"
        )
        if not settings.wechat_configured:
            extra = "" if port == 8000 else f" --url http://{host}:{port}/wechat"
            if simulator_port != 9100:
                extra += f" --simulator-url http://127.0.0.1:{simulator_port}"
            command = f".venv/bin/flask --app app wechat simulate{extra}"
            print(f"[serve] try it:  {command} '我的订单还没发货'")
            if not settings.kf_configured:
                kf = f" --simulator-url {env['KF_API_BASE_URL']}"
                kf = "" if kf_simulator_port == DEMO_KF_SIMULATOR_PORT else kf
                print(f"[serve] 微信客服: .venv/bin/flask --app app kf simulate{kf} '满多少包邮？'")
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
