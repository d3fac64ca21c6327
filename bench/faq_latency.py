"""FAQ answers through the real service: message in (POST /wechat) to reply sent, p50/p95/max.

The reply is sent either in the response to WeChat's callback itself (the web process
answers an exact FAQ hit at once, app/pipeline/instant.py; the time is when that
response arrived) or through WeChat's customer-service API, played by the simulator (a
paraphrase the worker's retrieval matched; the time is when the simulator received it).

A question that is an FAQ's own (or a listed paraphrase) is answered with the stored answer
and never waits for the model. The production path runs: gunicorn, PostgreSQL, Redis,
milvus-lite, and one Celery worker process for the ``llm`` queue holding the real model.
The simulator runs inside this process, so the send time it stamps and the time the
callback was posted come from one clock.

Three phases, in this order, each posting FAQ questions one every ``--gap`` seconds:

Questions: bench/data/faq_paraphrases.jsonl, 60 ways customers ask the sample shop's FAQ
entries, 45 of them not listed on their entry (matched by meaning, app/faq/). Each is
timed whatever answered it; the table says how many got their entry's stored answer and
how many in the reply to the callback itself.

1. idle: nothing else is being answered;
2. busy: first ``--busy`` model questions (long grounded answers) are posted, then the FAQ
   questions while those generate — the service's worker shape: one process, a thread
   pool of 2 x LLM_PARALLEL, one model decoding the answers together;
3. baseline: the same busy load on the shape this replaces, a prefork worker with
   ``-c 1`` (one answer at a time): FAQ answers queue behind the model's answers.

    .venv/bin/python -m bench.faq_latency [--faq 30] [--busy 4] [--gap 0.5]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import requests

from app.knowledge import milvus_server
from app.simulator.api import create_simulator_app
from app.simulator.callback_client import CallbackClient
from app.simulator.server import serve_in_thread
from app.simulator.state import WeChatAPISimulator
from bench import summary
from bench.ack_latency import (
    BIN,
    REDIS_URL,
    ROOT,
    WECHAT,
    Processes,
    base_env,
    flask,
    flushed_redis,
    free_port,
    machine,
    server_versions,
    throwaway_postgres,
    wait_for,
)
from bench.retrieval_sets import DATA

#: FAQ questions as customers ask them: 15 listed on their entry, 45 not (written by
#: someone who saw the entries' questions and answers but was told not to reuse them).
PARAPHRASES = DATA / "faq_paraphrases.jsonl"
#: Questions for the model while the FAQ questions are timed (busy phases).
MODEL_QUESTIONS = [
    "我昨天付的款，什么时候能发出来？",
    "超过两天还没发货有补偿吗",
    "想发顺丰的话要加钱吗",
    "我在新疆，买了80块钱的东西要付多少运费",
    "浴巾拆开了还能七天无理由退吗",
    "电饭煲用了两个月坏了，怎么保修",
]


def faq_questions() -> list[dict[str, object]]:
    lines = PARAPHRASES.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def stored_answers() -> dict[str, str]:
    with (ROOT / "knowledge" / "faq.csv").open(encoding="utf-8") as fh:
        return {row["question"]: row["answer"].strip() for row in csv.DictReader(fh)}


def worker_args(shape: str, parallel: int) -> list[str]:
    pool = ["--pool", "threads", "-c", str(2 * parallel)] if shape == "threads" else ["-c", "1"]
    return [str(BIN / "celery"), "-A", "app.worker", "worker", "-Q", "llm,default", *pool,
            "-n", f"{shape}@bench", "--loglevel", "INFO"]  # fmt: skip


def post(client: CallbackClient, xml: str):  # noqa: ANN201
    """Posts as WeChat does, which retries a request whose connection broke: gunicorn may
    close an idle keep-alive connection just as the client reuses it."""
    try:
        return client.post(xml)
    except requests.ConnectionError:
        return client.post(xml)


def phase(
    name: str,
    client: CallbackClient,
    sim: WeChatAPISimulator,
    faqs: list[dict[str, object]],
    model_questions: list[str],
    gap: float,
    timeout: float,
) -> dict[str, object]:
    """Posts the model questions, then the FAQ questions; returns their delivery times,
    and which of them got their entry's stored answer."""
    busy = [f"o_busy_{uuid.uuid4().hex[:10]}" for _ in model_questions]
    for openid, q in zip(busy, model_questions, strict=True):
        post(client, client.text(openid, q))
    if model_questions:
        time.sleep(2.0)  # let the worker take them (and start generating) first
    posted: dict[str, float] = {}
    passive: dict[str, float] = {}
    asked: dict[str, dict[str, object]] = {}
    texts: dict[str, str] = {}
    for q in faqs:
        openid = f"o_faq_{uuid.uuid4().hex[:10]}"
        xml = client.text(openid, str(q["q"]))
        asked[openid] = q
        posted[openid] = time.time()
        resp = post(client, xml)
        assert resp.status_code == 200, resp.text
        if "<Content>" in resp.text:  # the answer rode on the reply to WeChat's request
            passive[openid] = time.time()
            texts[openid] = resp.text.split("<Content><![CDATA[")[1].split("]]></Content>")[0]
        time.sleep(gap)

    def delivered() -> dict[str, float]:
        sent = {m["touser"]: m["at"] for m in sim.sent if m["touser"] in posted}
        return {**sent, **passive}

    deadline = time.monotonic() + timeout
    while len(delivered()) < len(posted) and time.monotonic() < deadline:
        time.sleep(0.2)
    got = delivered()
    for m in sim.sent:
        if m["touser"] in posted and m["touser"] not in texts:
            texts[m["touser"]] = m["content"]
    answers = stored_answers()
    timed = [
        {
            "ms": (got[o] - t) * 1000,
            "listed": bool(asked[o]["listed"]),
            "stored": texts.get(o, "") == answers[str(asked[o]["faq"])],
        }
        for o, t in posted.items()
        if o in got
    ]
    latencies = sorted(x["ms"] for x in timed)
    missing = len(posted) - len(latencies)
    # The phase ends when the model's answers are out too: phases must not overlap.
    while time.monotonic() < deadline + timeout and not all(
        any(m["touser"] == o for m in sim.sent) for o in busy
    ):
        time.sleep(1.0)
    print(
        f"[bench] {name}: {len(latencies)}/{len(posted)} FAQ answers delivered, "
        f"{len(passive)} of them in the reply to the callback itself",
        flush=True,
    )
    return {
        "name": name,
        "ms": latencies,
        "timed": timed,
        "missing": missing,
        "passive": len(passive),
    }


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, round(q * (len(values) - 1)))] if values else float("nan")


HEADER = (
    "| phase | questions | delivered | the entry's stored answer | in the callback reply "
    "| p50 (ms) | p95 (ms) | max (ms) |\n"
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def table_rows(r: dict[str, object]) -> list[str]:
    """One phase's rows: all its questions, those not listed on their entry, the listed."""
    timed: list[dict] = r["timed"]  # type: ignore[assignment]
    out = []
    for label, keep in (
        ("all", lambda x: True),
        ("not listed", lambda x: not x["listed"]),
        ("listed", lambda x: x["listed"]),
    ):
        rows = [x for x in timed if keep(x)]
        ms = sorted(x["ms"] for x in rows)
        stored = sum(x["stored"] for x in rows)
        passive = r["passive"] if label == "all" else "-"
        out.append(
            f"| {r['name']} | {label} | {len(ms)} | {stored} | {passive} | "
            f"{pct(ms, 0.5):.0f} | {pct(ms, 0.95):.0f} | "
            f"{max(ms) if ms else float('nan'):.0f} |"
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--faq", type=int, default=0, help="FAQ questions per phase (default: all 60)"
    )
    parser.add_argument("--busy", type=int, default=4, help="model questions in busy phases")
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between FAQ questions")
    parser.add_argument("--timeout", type=float, default=240, help="wait per phase (s)")
    parser.add_argument("--redis-url", default=REDIS_URL)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    work = Path(tempfile.mkdtemp(prefix="bench-faq-"))
    (work / "logs").mkdir()
    procs = Processes(work / "logs")
    sim = WeChatAPISimulator(WECHAT["app_id"], WECHAT["secret"])
    handle = serve_in_thread(create_simulator_app(sim))
    results = []
    try:
        with throwaway_postgres() as database_url, flushed_redis(args.redis_url) as broker_url:
            env = base_env(
                work / "data",
                DATABASE_URL=database_url,
                CELERY_BROKER_URL=broker_url,
                WECHAT_API_BASE_URL=handle.url,
                LLM_TEMPERATURE="0.6",
                LLM_MAX_TOKENS="384",
                MILVUS_COLLECTION="kb_faq_bench",
            )
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
            client = CallbackClient(f"http://127.0.0.1:{port}/wechat", WECHAT["token"],
                                    WECHAT["app_id"])  # fmt: skip
            info = "\n".join(f"- {k}: {v}" for k, v in machine().items())
            print(f"# FAQ answers: message in -> reply sent\n\n{info}", flush=True)
            print(f"- stores: {server_versions(database_url, broker_url)}", flush=True)
            faqs = faq_questions()
            model_qs = MODEL_QUESTIONS
            parallel = int(env.get("LLM_PARALLEL", "4"))
            for shape, label, busy in (
                ("threads", "idle (service worker)", 0),
                ("threads", "busy (service worker: threads, one batched model)", args.busy),
                ("prefork", "busy (baseline worker: prefork -c 1)", args.busy),
            ):
                name = f"worker-{shape}"
                if name not in procs.procs:
                    for other in [n for n in procs.procs if n.startswith("worker-")]:
                        proc = procs.procs.pop(other)
                        proc.send_signal(signal.SIGTERM)
                        proc.wait(60)
                    procs.start(name, worker_args(shape, parallel), env)
                    # A first answer loads the model and the embedder in the worker.
                    openid = f"o_warm_{uuid.uuid4().hex[:8]}"
                    post(client, client.text(openid, model_qs[0]))
                    wait_for(lambda o=openid: any(m["touser"] == o for m in sim.sent), 240,
                             "the worker's first answer")  # fmt: skip
                picked = faqs if args.faq <= 0 else faqs[: args.faq]
                results.append(
                    phase(label, client, sim, picked, model_qs[:busy], args.gap, args.timeout)
                )
                # Each phase's rows as soon as it ends: a run cut short keeps what it measured.
                print("\n".join(table_rows(results[-1])), file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("[bench] interrupted", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        handle.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("\n" + HEADER)
    for r in results:
        print("\n".join(table_rows(r)))
    if results:
        print_summary_row(results, summary.run_command(argv))
    return 0


def print_summary_row(results: list[dict[str, object]], command: str) -> None:
    """The summary row: the service's phases against the prefork ``-c 1`` worker's, when
    that phase ran."""

    def p95(r: dict[str, object], keep=lambda x: True) -> float:  # noqa: ANN001
        return pct(sorted(x["ms"] for x in r["timed"] if keep(x)), 0.95)  # type: ignore[attr-defined]

    service = [r for r in results if "baseline" not in str(r["name"])]
    baseline = [r for r in results if "baseline" in str(r["name"])]
    idle = service[0]
    unlisted = [x for x in idle["timed"] if not x["listed"]]  # type: ignore[attr-defined]
    worst = max(p95(r) for r in service)
    busy = service[-1]
    summary.print_row(
        "FAQ answers, message in -> reply sent (15)",
        "p95 <= 300 ms",
        f"listed paraphrases p95 {p95(idle, lambda x: x['listed']):.0f} ms; unlisted: "
        f"{sum(x['stored'] for x in unlisted)} of {len(unlisted)} verbatim, p95 "
        f"{p95(idle, lambda x: not x['listed']):.0f} ms; all, busy: p95 {p95(busy):.0f} ms",
        f"prefork -c 1 worker, busy: p95 {p95(baseline[0]):.0f} ms"
        if baseline
        else "none measured (the prefork -c 1 phase did not run)",
        summary.ratio(p95(busy), p95(baseline[0])) if baseline else None,
        worst <= 300,
        "FAQ answers: message in -> reply sent, over paraphrases not listed",
        command=command,
    )


if __name__ == "__main__":
    sys.exit(main())
