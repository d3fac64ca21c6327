"""The README's quick start: `flask serve` on embedded defaults (SQLite, a broker with no
server, a milvus-lite server it starts itself, demo WeChat and demo 微信客服) answers a
customer on each, and Ctrl-C stops every process it started."""

from __future__ import annotations

import signal
import socket

import pytest

from tests.support import BIN, Processes, base_env, free_port, healthy, run_flask, wait_until

pytestmark = pytest.mark.slow


def _closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_serve_answers_in_demo_mode_and_ctrl_c_stops_all(tmp_path, processes: Processes) -> None:
    port, sim_port, milvus_port, kf_port = free_port(), free_port(), free_port(), free_port()
    env = base_env(tmp_path, MILVUS_URI=f"http://127.0.0.1:{milvus_port}")
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "PUBLIC_BASE_URL"):
        env.pop(name, None)
    serve = processes.start(
        "serve",
        [
            str(BIN / "flask"),
            "--app",
            "app",
            "serve",
            "--port",
            str(port),
            "--simulator-port",
            str(sim_port),
            "--kf-simulator-port",
            str(kf_port),
            "--web-workers",
            "1",
        ],
        env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: healthy(url), 300, "the quick-start service to become healthy")
    except TimeoutError:
        pytest.fail(processes.log("serve")[-4000:])
    assert (tmp_path / "app.db").is_file() and (tmp_path / "broker.sqlite").is_file()

    done = run_flask(
        [
            "wechat",
            "simulate",
            "--url",
            f"{url}/wechat",
            "--simulator-url",
            f"http://127.0.0.1:{sim_port}",
            "满多少包邮？",
        ],
        env,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr + processes.log("serve")[-3000:]
    assert "99" in done.stdout  # FAQ: 实付满99元包邮

    # 微信客服: its simulator notifies /kf, a worker syncs, another answers.
    kf_sim = f"http://127.0.0.1:{kf_port}"
    done = run_flask(["kf", "simulate", "--simulator-url", kf_sim, "怎么查询物流？"], env, 240)
    assert done.returncode == 0, done.stdout + done.stderr + processes.log("serve")[-3000:]
    assert "物流" in done.stdout  # FAQ: 我的-全部订单 … 物流轨迹

    serve.send_signal(signal.SIGINT)  # Ctrl-C in the terminal
    serve.wait(timeout=60)
    for p in (port, sim_port, milvus_port, kf_port):
        wait_until(lambda p=p: _closed(p), 30, f"port {p} to close")
