"""The burst with the answering worker killed, in full: 100 customers' questions answered by
the real model while the worker is SIGKILLed five times and another process keeps a core
busy. Prints sent, answered once, answered twice, lost, the worst acknowledgement, and
how long the backlog took to drain against the same questions answered without kills.

The production path runs: gunicorn, a Celery worker (``-Q llm,default --pool threads``),
beat, PostgreSQL, Redis, a milvus-lite server, the quick-start or test model; WeChat is
the simulator in this process. Questions come from the sample shop's evaluation set
(bench/data/answer_eval.jsonl): most need the model, some are FAQ paraphrases the web
process answers at once. Two phases, each with its own customers:

1. calm: the questions posted ``--gap`` apart, nothing killed: the time from the first
   post to the last reply is what the model needs for these answers on this machine;
2. chaos: other customers, the same questions; the worker is SIGKILLed ``--kills``
   times while answers are in progress (each kill waits until a message is claimed) and
   started again at once. Its claims lapse (ANSWER_CLAIM_LEASE_S) and the sweeper
   re-queues them.

Target (issue 21): chaos answers every customer exactly once, and drains within 1.5x
the calm phase. The reduced form runs in the tests (tests/chaos/test_burst.py).

    .venv/bin/python -m bench.chaos [--questions 100] [--kills 5] [--model 0.5b]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import requests
import sqlalchemy as sa

from app.knowledge import milvus_server
from app.settings import load_settings
from app.simulator.api import create_simulator_app
from app.simulator.callback_client import CallbackClient
from app.simulator.server import serve_in_thread
from app.simulator.state import WeChatAPISimulator
from bench import summary
from bench.ack_latency import (
    BIN,
    REDIS_URL,
    WECHAT,
    Processes,
    base_env,
    flask,
    flushed_redis,
    free_port,
    machine,
    throwaway_postgres,
    wait_for,
)
from bench.answer_setup import model_path
from bench.faq_latency import post
from bench.retrieval_sets import DATA

WORKER = "worker"


def questions(n: int) -> list[str]:
    rows = [json.loads(line) for line in (DATA / "answer_eval.jsonl").read_text().splitlines()]
    asked = [str(r["q"]) for r in rows if r.get("q")]
    return [asked[i % len(asked)] for i in range(n)]


def worker_args(concurrency: int) -> list[str]:
    return [str(BIN / "celery"), "-A", "app.worker", "worker", "-Q", "llm,default",
            "--pool", "threads", "-c", str(concurrency), "-n", "chaos@bench",
            "--loglevel", "INFO"]  # fmt: skip


def _healthy(url: str) -> bool:
    try:
        return requests.get(url + "/healthz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def burn_a_core() -> subprocess.Popen:
    """Another tenant of the machine: one core kept busy for the whole run."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def phase(
    name: str,
    client: CallbackClient,
    sim: WeChatAPISimulator,
    asked: list[str],
    gap: float,
    timeout: float,
    database_url: str,
    notice: str,
    kill: threading.Thread | None = None,
    done: threading.Event | None = None,
) -> dict[str, object]:
    customers = [f"o_{name}_{uuid.uuid4().hex[:10]}" for _ in asked]
    acks: list[float] = []
    passive: set[str] = set()  # answered in the reply to the callback itself (FAQ hits)
    started = time.time()
    if kill is not None:
        kill.start()
    for openid, q in zip(customers, asked, strict=True):
        t0 = time.monotonic()
        resp = post(client, client.text(openid, q))
        acks.append(time.monotonic() - t0)
        assert resp.status_code == 200, resp.text
        if "<Content>" in resp.text:
            passive.add(openid)
        time.sleep(gap)
    wanted = set(customers)

    def answered() -> set[str]:
        sent = {m["touser"] for m in sim.sent if m["content"] != notice}
        return (sent | passive) & wanted

    deadline = time.monotonic() + timeout
    while len(answered()) < len(customers) and time.monotonic() < deadline:
        time.sleep(0.5)
    if done is not None:
        done.set()
    if kill is not None:
        kill.join(timeout=60)
    time.sleep(5)  # a duplicate would come now, from a task that resumed after a kill
    answers: dict[str, list[str]] = {o: ["(in the reply to the callback)"] for o in passive}
    notices: set[str] = set()
    last = started
    for m in sim.sent:
        if m["touser"] not in wanted:
            continue
        if m["content"] == notice:  # "your answer is coming" (ANSWER_WAIT_NOTICE_AFTER_S)
            notices.add(m["touser"])
            continue
        answers.setdefault(m["touser"], []).append(m["content"])
        last = max(last, m["at"])
    stored = stored_pieces(database_url, customers, notice)
    # An answer longer than one WeChat message goes out in pieces (each a stored reply):
    # twice is a piece sent twice, or more sends than the answer has pieces.
    twice = {
        o
        for o, texts in answers.items()
        if len(texts) != len(set(texts)) or len(texts) > max(stored.get(o, 0), 1)
    }
    result = {
        "name": name,
        "sent": len(customers),
        "once": sum(1 for o in customers if answers.get(o) and o not in twice),
        "twice": len(twice),
        "lost": sum(1 for o in customers if not answers.get(o)),
        "notices": len(notices),
        "worst_ack_s": max(acks),
        "drain_s": last - started,
    }
    print(
        f"[bench] {name}: sent {result['sent']}, answered once {result['once']}, twice "
        f"{result['twice']}, lost {result['lost']}, told to wait {result['notices']}, "
        f"worst acknowledgement "
        f"{result['worst_ack_s']:.2f} s, last reply after {result['drain_s']:.0f} s",
        flush=True,
    )
    return result


def stored_pieces(database_url: str, customers: list[str], notice: str) -> dict[str, int]:
    """Each customer's answer pieces stored as sent (the wait notice is not one)."""
    engine = sa.create_engine(database_url)
    sql = sa.text(
        "SELECT m.customer, count(r.id) FROM outbound_replies r "
        "JOIN inbound_messages m ON r.inbound_id = m.id "
        "WHERE r.status = 'sent' AND r.content <> :notice AND m.customer = ANY(:customers) "
        "GROUP BY m.customer"
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(sql, {"notice": notice, "customers": customers}).all()
    finally:
        engine.dispose()
    return {str(customer): int(count) for customer, count in rows}


def killer(
    procs: Processes,
    env: dict[str, str],
    database_url: str,
    kills: int,
    concurrency: int,
    done: threading.Event,
    killed: list[float],
) -> threading.Thread:
    """SIGKILLs the worker ``kills`` times, each while a message is claimed, and starts it
    again at once (as systemd or compose's restart policy would); stops early once every
    customer is answered (``done``): the kills done are printed."""
    engine = sa.create_engine(database_url)

    def claimed() -> bool:
        with engine.connect() as conn:
            sql = "SELECT count(*) FROM inbound_messages WHERE status='processing'"
            return bool(conn.execute(sa.text(sql)).scalar())

    def run() -> None:
        for i in range(kills):
            if done.wait(8):  # some answers between kills
                return
            wait_for(lambda: done.is_set() or claimed(), 600, "an answer in progress")
            if done.is_set():
                return
            proc = procs.procs.pop(WORKER)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            killed.append(time.time())
            print(f"[bench] kill {i + 1}/{kills}", flush=True)
            procs.start(WORKER, worker_args(concurrency), env)
        engine.dispose()

    return threading.Thread(target=run, daemon=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--model", default="0.5b", help="0.5b, 1.5b or a GGUF path")
    parser.add_argument("--gap", type=float, default=0.2, help="seconds between questions")
    parser.add_argument("--timeout", type=float, default=3600, help="wait per phase (s)")
    parser.add_argument("--no-busy-core", action="store_true")
    parser.add_argument("--redis-url", default=REDIS_URL)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the simulator's request log

    work = Path(tempfile.mkdtemp(prefix="bench-chaos-"))
    (work / "logs").mkdir()
    procs = Processes(work / "logs")
    sim = WeChatAPISimulator(WECHAT["app_id"], WECHAT["secret"])
    handle = serve_in_thread(create_simulator_app(sim))
    burner = None if args.no_busy_core else burn_a_core()
    results = []
    killed: list[float] = []
    model = model_path(args.model)
    try:
        with throwaway_postgres() as database_url, flushed_redis(args.redis_url) as broker_url:
            env = base_env(
                work / "data",
                DATABASE_URL=database_url,
                CELERY_BROKER_URL=broker_url,
                WECHAT_API_BASE_URL=handle.url,
                LLM_MODEL_PATH=str(model),
                MILVUS_COLLECTION="kb_chaos_bench",
                RATE_LIMIT_MESSAGES="0",
            )
            concurrency = 2 * int(env.get("LLM_PARALLEL", "4"))
            milvus_port = free_port()
            procs.start("milvus", milvus_server.command(work / "milvus", "127.0.0.1", milvus_port),
                        env)  # fmt: skip
            procs.wait_port("milvus", milvus_port)
            env["MILVUS_URI"] = f"http://127.0.0.1:{milvus_port}"
            flask(["db", "upgrade"], env)
            flask(["kb", "ingest"], env)
            port = free_port()
            procs.start("web", [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}",
                                "--workers", "2", "--worker-class", "gthread", "--threads", "8",
                                "app.wsgi:app"], env)  # fmt: skip
            procs.wait_port("web", port)
            # gunicorn listens before its workers have loaded the app: wait for them.
            wait_for(lambda: _healthy(f"http://127.0.0.1:{port}"), 300, "GET /healthz 200")
            procs.start("beat", [str(BIN / "celery"), "-A", "app.worker", "beat"], env)
            procs.start(WORKER, worker_args(concurrency), env)
            client = CallbackClient(f"http://127.0.0.1:{port}/wechat", WECHAT["token"],
                                    WECHAT["app_id"])  # fmt: skip
            info = "\n".join(f"- {k}: {v}" for k, v in machine().items())
            print(f"# The burst with the worker killed\n\n{info}\n- model: {model.name}\n"
                  f"- busy core: {'no' if burner is None else 'yes'}\n"
                  f"- command: {' '.join(sys.argv)}", flush=True)  # fmt: skip
            warm = f"o_warm_{uuid.uuid4().hex[:8]}"
            post(client, client.text(warm, questions(1)[0]))
            wait_for(lambda: any(m["touser"] == warm for m in sim.sent), 600, "a first answer")
            asked = questions(args.questions)
            notice = load_settings().answer_wait_notice_text
            results.append(
                phase("calm", client, sim, asked, args.gap, args.timeout, database_url, notice)
            )
            done = threading.Event()
            kill = killer(procs, env, database_url, args.kills, concurrency, done, killed)
            results.append(
                phase(
                    "chaos", client, sim, asked, args.gap, args.timeout, database_url, notice,
                    kill, done,
                )
            )
    except KeyboardInterrupt:
        print("[bench] interrupted", file=sys.stderr)
        return 130
    finally:
        if burner is not None:
            burner.kill()
        procs.stop_all()
        handle.stop()
        shutil.rmtree(work, ignore_errors=True)
    calm, chaos = results
    ratio = float(chaos["drain_s"]) / max(float(calm["drain_s"]), 1e-9)  # type: ignore[arg-type]
    print("\n| phase | sent | once | twice | lost | told to wait | worst ack (s) | drained (s) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['name']} | {r['sent']} | {r['once']} | {r['twice']} | {r['lost']} | "
              f"{r['notices']} | {r['worst_ack_s']:.2f} | {r['drain_s']:.0f} |")  # fmt: skip
    print(f"\nworker SIGKILLed {len(killed)} times while answering (asked for {args.kills})")
    print(f"chaos drained in {ratio:.2f}x the calm phase (target <= 1.5x)")
    busy = "" if args.no_busy_core else ", a core kept busy"
    summary.print_row(
        f"burst of {chaos['sent']} with the answering worker killed {len(killed)} times{busy}"
        " (21)",
        "0 lost, 0 twice, drained <= 1.5x the calm burst",
        f"{chaos['once']} of {chaos['sent']} answered once, {chaos['twice']} twice, "
        f"{chaos['lost']} lost, worst acknowledgement {chaos['worst_ack_s']:.2f} s, "
        f"drained in {chaos['drain_s']:.0f} s",
        f"calm burst (no kills): drained in {calm['drain_s']:.0f} s",
        f"{ratio:.2f}x",
        chaos["lost"] == chaos["twice"] == 0 and ratio <= 1.5,
        "Chaos: outages, kills and restarts under traffic (issue 21, 2026-12-07)",
        command=summary.run_command(argv),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
