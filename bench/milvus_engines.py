"""Search latency of the embedded Milvus engines themselves, with no embedder and no app code.

milvus-lite 2.5 (the product's embedded engine) runs Milvus' C++ segment code (FLAT and
IVF_FLAT only). milvus-lite 3.x, which the product used before, is a Python engine: every
search walks all rows in Python to drop overwritten and deleted ones before the index is
asked, so its latency grows with the row count whatever the index. Same rows, same
queries, one engine per run; run it once in each environment:

    .venv/bin/python -m bench.milvus_engines --rows 100000 --index FLAT
    python3.11 -m venv /tmp/ml3 && /tmp/ml3/bin/pip install milvus-lite==3.2.2 \\
        pymilvus==3.0.2 numpy jieba
    /tmp/ml3/bin/python bench/milvus_engines.py --rows 100000 --index HNSW

Rows: random unit vectors (384 dimensions) and jieba-analysed Chinese text for BM25; the
dense index is built before the rows arrive, and searches start once the engine's
background work (compaction, index builds) has stopped using the CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from importlib.metadata import version

import numpy as np
from pymilvus import AnnSearchRequest, DataType, Function, FunctionType, MilvusClient, RRFRanker

try:
    from bench import summary
    from bench.settle import wait_until_idle
except ImportError:  # run as a script from another venv: bench/ itself is on sys.path
    import summary  # type: ignore[no-redef]
    from settle import wait_until_idle  # type: ignore[no-redef]

WORDS = (
    "退货 运费 顾客 承担 七天 无理由 保修 电饭煲 发票 快递 物流 订单 取消 优惠券 会员 积分 "
    "售后 维修 换货 包装 签收 退款 到账 银行卡 地址 修改 发货 仓库 预售 定金"
).split()
QUERIES = ("电饭煲保修多久", "退货运费谁出", "发票怎么开", "退款多久到账", "可以修改地址吗")


def _p95(samples: list[float]) -> float:
    s = sorted(samples)
    return s[int(len(s) * 0.95)]


def _p(samples: list[float]) -> str:
    s = sorted(samples)
    return f"p50 {s[len(s) // 2]:6.1f}  p95 {_p95(s):6.1f} ms"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--index", default="FLAT", help="FLAT or IVF_FLAT (2.5), HNSW (3.x)")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args(argv)
    print(f"# milvus-lite {version('milvus-lite')}, pymilvus {version('pymilvus')}")
    print(f"- machine: {platform.node()}, {os.cpu_count()} cores; {args.rows} rows, {args.index}")
    folder = tempfile.mkdtemp(prefix="milvus-engines-")
    client = MilvusClient(f"{folder}/bench.db")
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field(
        "text",
        DataType.VARCHAR,
        max_length=2000,
        enable_analyzer=True,
        analyzer_params={"tokenizer": "jieba"},
    )
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=384)
    schema.add_function(
        Function(
            name="bm25",
            function_type=FunctionType.BM25,
            input_field_names=["text"],
            output_field_names=["sparse"],
        )
    )
    client.create_collection("bench", schema=schema)
    params = client.prepare_index_params()
    build = {"HNSW": {"M": 16, "efConstruction": 200}, "IVF_FLAT": {"nlist": 1024}}
    params.add_index(
        "dense", index_type=args.index, metric_type="IP", params=build.get(args.index, {})
    )
    params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_index("bench", params)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for start in range(0, args.rows, 5000):
        n = min(5000, args.rows - start)
        vecs = rng.standard_normal((n, 384)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        texts = ["".join(rng.choice(WORDS, 12)) + "。" for _ in range(n)]
        client.insert(
            "bench",
            [{"id": start + i, "text": texts[i], "dense": vecs[i].tolist()} for i in range(n)],
        )
    client.flush("bench")
    client.load_collection("bench")
    insert_rate = args.rows / (time.perf_counter() - t0)
    print(f"- insert + flush: {insert_rate:.0f} rows/s")
    # 3.x runs in this process; 2.5 in a child process (its server binary).
    pids = [os.getpid(), *_children(os.getpid())]
    waited = max(wait_until_idle(pid) for pid in pids)
    print(f"- background compaction and index builds settled after {waited:.0f} s")
    queries = rng.standard_normal((args.queries, 384)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    dense_param = {"metric_type": "IP", "params": {"ef": 64, "nprobe": 16}}

    def timed(call) -> list[float]:  # noqa: ANN001
        out = []
        for i in range(args.queries):
            t = time.perf_counter()
            call(i)
            out.append((time.perf_counter() - t) * 1000)
        return out

    dense = timed(
        lambda i: client.search(
            "bench",
            data=[queries[i].tolist()],
            anns_field="dense",
            limit=20,
            search_params=dense_param,
            output_fields=["text"],
        )
    )
    bm25 = timed(
        lambda i: client.search(
            "bench",
            data=[QUERIES[i % len(QUERIES)]],
            anns_field="sparse",
            limit=20,
            search_params={"metric_type": "BM25"},
            output_fields=["text"],
        )
    )
    hybrid = timed(
        lambda i: client.hybrid_search(
            "bench",
            [
                AnnSearchRequest(
                    data=[queries[i].tolist()], anns_field="dense", param=dense_param, limit=20
                ),
                AnnSearchRequest(
                    data=[QUERIES[i % len(QUERIES)]],
                    anns_field="sparse",
                    param={"metric_type": "BM25"},
                    limit=20,
                ),
            ],
            RRFRanker(60),
            limit=5,
            output_fields=["text"],
        )
    )
    print(f"- dense  (top 20) {_p(dense)}")
    print(f"- BM25   (top 20) {_p(bm25)}")
    print(f"- hybrid (top 5 of 20 + 20, RRF) {_p(hybrid)}")
    client.close()
    summary.print_row(
        f"embedded Milvus engine alone, {args.rows} random vectors, no app code (4)",
        None,
        f"milvus-lite {version('milvus-lite')} {args.index}: hybrid_search p95 "
        f"{_p95(hybrid):.1f} ms, dense {_p95(dense):.1f} ms, BM25 {_p95(bm25):.1f} ms; "
        f"insert + flush {insert_rate:.0f} rows/s",
        "none (this is the raw engine)",
        None,
        None,
        "The embedded engine moved to milvus-lite 2.5 (third session of 2026-11-21)",
        command=summary.run_command(argv),
    )


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


if __name__ == "__main__":
    main()
