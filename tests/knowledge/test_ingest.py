"""Folder -> collection: idempotent, replaces changed documents cleanly, reports every file."""

from __future__ import annotations

import threading
from pathlib import Path

from app.knowledge.chunking import chunk_document
from app.knowledge.ingest import IngestReport, ingest_directory
from app.knowledge.sources import load_document
from app.knowledge.store import KnowledgeStore
from tests.knowledge.conftest import FAQ_ROWS, POLICY_MD, faq_chunks, faq_csv


def _statuses(report: IngestReport) -> dict[str, str]:
    return {d.source: d.status for d in report.documents}


def test_ingest_reports_each_file_and_hybrid_finds_chinese_paraphrases(
    store: KnowledgeStore, kb_dir: Path
) -> None:
    (kb_dir / "README.md").write_text("# About this folder\n", encoding="utf-8")
    (kb_dir / "scan.pdf").write_bytes(b"%PDF-1.4")  # damaged: a header and nothing else
    (kb_dir / "slides.pptx").write_bytes(b"PK\x03\x04")
    (kb_dir / "broken.csv").write_text("question,答复\n包邮吗,满99\n", encoding="utf-8")

    report = ingest_directory(store, kb_dir)

    by_source = {d.source: d for d in report.documents}
    assert set(by_source) == {"broken.csv", "faq.csv", "policy.md", "scan.pdf", "slides.pptx"}
    assert (by_source["faq.csv"].status, by_source["faq.csv"].chunks) == ("indexed", faq_chunks())
    assert by_source["faq.csv"].kind == "faq" and len(by_source["faq.csv"].sha256) == 64
    assert (by_source["policy.md"].status, by_source["policy.md"].chunks) == ("indexed", 4)
    assert by_source["policy.md"].title == "测试商店售后政策"
    assert by_source["slides.pptx"].status == "skipped"
    assert ".pptx" in by_source["slides.pptx"].message
    assert by_source["scan.pdf"].status == "failed" and "damaged" in by_source["scan.pdf"].message
    assert by_source["broken.csv"].status == "failed"
    assert "answer" in by_source["broken.csv"].message
    assert not report.ok
    assert store.count() == faq_chunks() + 4

    # Paraphrases that share few words with the FAQ: found by the questions' vectors and
    # BM25 (jieba) together.
    refund = store.search("钱退回来要等几天", 3)
    assert refund[0].metadata["question"] == "退款多久到账？"
    points = store.search("用积分能抵钱吗", 3)
    assert points[0].metadata["answer"] == "积分可以在结算时抵扣现金，100积分抵1元。"
    policy = store.search("质量问题退货谁出运费", 3)
    assert any(h.section.endswith("质量问题") for h in policy)


def test_reingest_unchanged_is_skipped(store: KnowledgeStore, kb_dir: Path) -> None:
    first = ingest_directory(store, kb_dir)
    ids_before = store.chunk_ids("faq.csv")

    again = ingest_directory(store, kb_dir)
    from_records = ingest_directory(
        store, kb_dir, known_hashes={d.doc_id: d.sha256 for d in first.documents}
    )

    assert set(_statuses(again).values()) == {"unchanged"}
    assert set(_statuses(from_records).values()) == {"unchanged"}
    assert [d.chunks for d in again.documents] == [d.chunks for d in first.documents]
    assert store.chunk_ids("faq.csv") == ids_before
    forced = ingest_directory(store, kb_dir, known_hashes={})
    assert set(_statuses(forced).values()) == {"indexed"}
    assert store.count() == faq_chunks() + 4


def test_collection_wiped_behind_the_records_back_is_reindexed(
    store: KnowledgeStore, kb_dir: Path
) -> None:
    first = ingest_directory(store, kb_dir)
    store.drop()

    records = {d.doc_id: d.sha256 for d in first.documents}
    again = ingest_directory(store, kb_dir, known_hashes=records)

    assert set(_statuses(again).values()) == {"indexed"}
    assert store.count() == faq_chunks() + 4


def test_changed_documents_are_replaced_without_leftovers(
    store: KnowledgeStore, kb_dir: Path
) -> None:
    ingest_directory(store, kb_dir)
    new_policy = POLICY_MD.split("## 保修")[0] + "## 换货\n\n签收后十五天内可以换货一次。\n"
    (kb_dir / "policy.md").write_text(new_policy, encoding="utf-8")
    rows = [r for r in FAQ_ROWS if r[0] != "忘记密码怎么办？"]
    rows[0] = (rows[0][0], "发货后无法修改地址，请拒收后重新下单。", rows[0][2], rows[0][3])
    (kb_dir / "faq.csv").write_text(faq_csv(rows), encoding="utf-8")

    # A reader searching throughout the update must always find the document.
    stop = threading.Event()
    misses: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            if not store.search("退货", 5, doc_id="policy.md", mode="bm25"):
                misses.append("policy.md vanished")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        report = ingest_directory(store, kb_dir)
    finally:
        stop.set()
        thread.join()

    assert _statuses(report) == {"faq.csv": "indexed", "policy.md": "indexed"}
    assert misses == []
    for source in ("faq.csv", "policy.md"):
        expected = {c.chunk_id for c in chunk_document(load_document(kb_dir / source, kb_dir))}
        assert store.chunk_ids(source) == expected
    assert store.count() == faq_chunks(rows) + 4
    new_sha = load_document(kb_dir / "policy.md", kb_dir).sha256
    assert store.document_hashes()["policy.md"] == new_sha
    texts = [h.text for h in store.search("保修 一年 密码 修改地址", 20, mode="bm25")]
    assert not any("保修一年" in t or "忘记密码" in t or "修改收货地址，发货后" in t for t in texts)
    assert any("请拒收后重新下单" in t for t in texts)


def test_prune_only_when_asked(store: KnowledgeStore, kb_dir: Path) -> None:
    ingest_directory(store, kb_dir)
    (kb_dir / "policy.md").unlink()

    kept = ingest_directory(store, kb_dir)
    assert "policy.md" not in _statuses(kept) and store.count(doc_id="policy.md") == 4

    pruned = ingest_directory(store, kb_dir, prune=True)
    deleted = [d for d in pruned.documents if d.status == "deleted"]
    assert [(d.doc_id, d.chunks) for d in deleted] == [("policy.md", 4)]
    assert store.count(doc_id="policy.md") == 0 and store.count() == faq_chunks()
