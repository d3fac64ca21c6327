"""How many passive-mode callbacks one web process can hold before acknowledgements wait.

A held try occupies a gunicorn thread for up to 5.5 s (app/channels/wechat/delivery.py). This
starts gunicorn (1 worker, gthread) in passive mode on SQLite and the embedded broker,
with no worker consuming answers (so nothing is ever ready and every try is held), sends
N slow questions at once, and meanwhile times acknowledgements of messages that need no
answer (a VIEW event: empty reply). It prints, per setting, how many tries were held,
how many got the "on its way" reply at once (WECHAT_PASSIVE_MAX_HELD reached), and the
acknowledgement latency while they were held.

    .venv/bin/python -m bench.passive_capacity [--threads 8] [--max-held 6] [--slow 12]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from app.simulator.callback_client import CallbackClient
from bench import summary
from bench.ack_latency import BIN, WECHAT, Processes, base_env, flask, free_port, wait_for


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.passive_capacity")
    p.add_argument("--threads", type=int, default=8, help="gunicorn --threads (8)")
    p.add_argument("--max-held", type=int, default=6, help="WECHAT_PASSIVE_MAX_HELD (6)")
    p.add_argument("--slow", type=int, default=12, help="slow questions sent at once (12)")
    p.add_argument("--acks", type=int, default=40, help="acknowledgements timed meanwhile")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-passive-"))
    procs = Processes(work)
    try:
        env = base_env(
            work,
            WECHAT_REPLY_MODE="passive",
            WECHAT_PASSIVE_MAX_HELD=str(args.max_held),
            WECHAT_INSTANT_FAQ="false",
            MILVUS_URI=f"http://127.0.0.1:{free_port()}",
        )
        flask(["db", "upgrade"], env)
        port = free_port()
        procs.start(
            "web",
            [
                str(BIN / "gunicorn"),
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--worker-class",
                "gthread",
                "--threads",
                str(args.threads),
                "app.wsgi:app",
            ],
            env,
        )
        url = f"http://127.0.0.1:{port}/wechat"
        client = CallbackClient(url, WECHAT["token"], WECHAT["app_id"])
        wait_for(lambda: client.verify_url("x").status_code == 200, 60, "the web tier")
        slow: list[tuple[float, str]] = []

        def ask(i: int) -> None:
            started = time.monotonic()
            try:
                resp = client.post(client.text(f"oSlow{i:04d}", f"问题{i}：这个怎么处理？"))
                slow.append((time.monotonic() - started, "notice" if resp.text else "empty"))
            except requests.Timeout:
                slow.append((time.monotonic() - started, "held past 5 s"))

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(args.slow)]
        for t in threads:
            t.start()
        time.sleep(0.5)  # the slow tries are in
        acks = []
        for i in range(args.acks):
            started = time.monotonic()
            try:
                client.post(client.event(f"oAck{i:04d}", "VIEW", "http://x"), timeout=10)
                acks.append(time.monotonic() - started)
            except requests.Timeout:
                acks.append(10.0)
            time.sleep(0.1)
        for t in threads:
            t.join()
        outcomes = {k: sum(1 for _, o in slow if o == k) for k in {o for _, o in slow}}
        acks.sort()
        print(
            f"command: .venv/bin/python -m bench.passive_capacity {' '.join(argv or sys.argv[1:])}"
        )
        print(
            f"gunicorn 1 worker x {args.threads} gthread threads, WECHAT_PASSIVE_MAX_HELD "
            f"{args.max_held}; {args.slow} slow questions at once (never answered)"
        )
        print(f"slow tries: {outcomes}")
        print(
            f"acknowledgements while held ({len(acks)}): p50 {1000 * statistics.median(acks):.0f}"
            f" ms, max {1000 * acks[-1]:.0f} ms, over 1 s: {sum(1 for a in acks if a > 1)}"
        )
        summary.print_row(
            f"passive mode: {args.slow} slow questions held by one web process, "
            f"{args.threads} threads, WECHAT_PASSIVE_MAX_HELD {args.max_held} (3)",
            None,
            f"slow tries: {', '.join(f'{n} {o}' for o, n in sorted(outcomes.items()))}; "
            "acknowledgements meanwhile p50 "
            f"{1000 * statistics.median(acks):.0f} ms, max {1000 * acks[-1]:.0f} ms, "
            f"{sum(1 for a in acks if a > 1)} of {len(acks)} over 1 s",
            "none measured",
            None,
            None,
            "Passive mode: callbacks held by one web process",
            command=summary.run_command(argv),
        )
        return 0
    finally:
        procs.stop_all()
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    sys.exit(main())
