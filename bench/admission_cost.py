"""What rate limiting and flood protection add to the callback's hot path.

Each question now costs, before the acknowledgement, one bounded count of unanswered
questions (the flood cap) and one counter increment (Redis INCR, or an upsert when there
is no Redis). This measures POST /wechat in-process (Flask's test client: the view, the
store, the broker; no HTTP server) with both checks on (the defaults) and off
(RATE_LIMIT_MESSAGES=0, FLOOD_MAX_BACKLOG=0), interleaved in rounds in the same run so
the machine's other load hits both alike, on PostgreSQL + Redis as in production. The
backlog is kept small (workers that keep up): far below the cap, the flood count is
taken at most once a second per process.

    .venv/bin/python -m bench.admission_cost [--rounds 10] [--per-round 100]

Uses a throwaway PostgreSQL database and BENCH_REDIS_URL (default db 14), flushed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory

import psycopg
import redis

from app import create_app
from app.extensions import db
from app.settings import load_settings
from app.simulator.callback_client import CallbackClient
from bench import summary

PG_ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
TOKEN, APP_ID = "benchtoken123", "wx0123456789abcdef"


def _app(data_dir: Path, database_url: str, limits: bool):  # noqa: ANN202
    off = {} if limits else {"rate_limit_messages": 0, "flood_max_backlog": 0}
    return create_app(
        load_settings(
            data_dir=data_dir,
            database_url=database_url,
            celery_broker_url=REDIS_URL,
            wechat_token=TOKEN,
            wechat_app_id=APP_ID,
            wechat_app_secret="benchsecret",
            wechat_timestamp_window_s=0,
            **off,
        )
    )


def _answer_all(app) -> None:  # noqa: ANN001
    """Plays workers that keep up: the backlog stays far below the flood cap, as it does
    when there is no flood (the common case this measures)."""
    with app.app_context():
        db.session.execute(db.text("UPDATE inbound_messages SET status='answered'"))
        db.session.commit()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--per-round", type=int, default=100)
    args = p.parse_args(argv)
    name = f"wxcs_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name
    redis.Redis.from_url(REDIS_URL).flushdb()
    try:
        with TemporaryDirectory() as tmp:
            apps = {"on": _app(Path(tmp), url, True), "off": _app(Path(tmp), url, False)}
            with apps["on"].app_context():
                db.create_all()
            signer = CallbackClient("http://x/wechat", TOKEN, APP_ID)
            times: dict[str, list[float]] = {"on": [], "off": []}
            cpu: dict[str, float] = {"on": 0.0, "off": 0.0}
            for r in range(args.rounds):
                for label in ("off", "on") if r % 2 else ("on", "off"):
                    client = apps[label].test_client()
                    for i in range(args.per_round):
                        # Many customers, as under real load: the per-customer limit is not hit.
                        xml = signer.text(f"o{label}{r}_{i % 50}", "我的订单还没发货")
                        prepared = signer.prepare(xml)
                        started, cpu_started = time.perf_counter(), time.process_time()
                        resp = client.post(
                            "/wechat", query_string=prepared.params, data=prepared.body
                        )
                        times[label].append(time.perf_counter() - started)
                        cpu[label] += time.process_time() - cpu_started
                        assert resp.status_code == 200, resp.get_data(as_text=True)
                        if i % 10 == 9:
                            _answer_all(apps["on"])
    finally:
        redis.Redis.from_url(REDIS_URL).flushdb()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    load = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {' '.join(load)} at the end; PostgreSQL + Redis on 127.0.0.1"
    )
    print(f"{args.rounds} rounds x {args.per_round} POST /wechat (text question) per variant")
    print("| per request (ms) | limits off | limits on (defaults) | on - off |")
    print("| --- | ---: | ---: | ---: |")
    for q, label in ((50, "p50"), (90, "p90"), (99, "p99")):
        off = statistics.quantiles(times["off"], n=100)[q - 1] * 1000
        on = statistics.quantiles(times["on"], n=100)[q - 1] * 1000
        print(f"| {label} | {off:.2f} | {on:.2f} | {on - off:+.2f} |")
    off, on = statistics.mean(times["off"]) * 1000, statistics.mean(times["on"]) * 1000
    print(f"| mean | {off:.2f} | {on:.2f} | {on - off:+.2f} |")
    n = args.rounds * args.per_round
    off, on = cpu["off"] / n * 1000, cpu["on"] / n * 1000
    print(f"| CPU of this process, mean | {off:.2f} | {on:.2f} | {on - off:+.2f} |")
    p50_off = statistics.quantiles(times["off"], n=100)[49] * 1000
    p50_on = statistics.quantiles(times["on"], n=100)[49] * 1000
    summary.print_row(
        "cost of rate limiting and flood protection on the callback (3)",
        None,
        f"limits on: CPU {on:.2f} ms per request ({on - off:+.2f}), p50 {p50_on:.2f} ms "
        f"({p50_on - p50_off:+.2f})",
        f"limits off: CPU {off:.2f} ms, p50 {p50_off:.2f} ms",
        summary.ratio(on, off, digits=2) + " CPU",
        None,
        "Cost of rate limiting and flood protection on the callback",
        command=summary.run_command(argv),
    )


if __name__ == "__main__":
    main()
