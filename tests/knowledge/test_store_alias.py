"""The store behind a Milvus alias: readers resolve the alias, a build is switched in one step."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.knowledge.chunking import chunk_document
from app.knowledge.embedding import Embedder
from app.knowledge.sources import load_document
from app.knowledge.store import KnowledgeStore, KnowledgeStoreError


def test_alias_store_builds_switches_and_copies(
    tmp_path: Path, embedder: Embedder, kb_dir: Path
) -> None:
    uri = str(tmp_path / "kb.db")
    reader = KnowledgeStore(uri, "kb", embedder, aliased=True)
    assert reader.physical_name() is None
    faq = chunk_document(load_document(kb_dir / "faq.csv", kb_dir))
    reader.upsert_chunks(faq)  # first use: a physical collection behind the alias
    blue = reader.physical_name()
    assert blue is not None and blue.startswith("kb__") and reader.builds() == [blue]

    green = reader.build_store()
    green.ensure_collection()
    copied = green.import_rows(reader.export_rows("faq.csv"))
    green.upsert_chunks(chunk_document(load_document(kb_dir / "policy.md", kb_dir)))
    assert copied == len(faq)
    with pytest.raises(KnowledgeStoreError, match="not a spare build"):
        reader.drop_physical(blue)  # never the serving one

    assert reader.search("发票", 1)[0].doc_id == "faq.csv"
    assert reader.count(doc_id="policy.md") == 0
    assert reader.switch_alias(green.collection) == blue
    assert reader.physical_name() == green.collection
    assert reader.count(doc_id="policy.md") == 4  # readers follow the alias at once
    assert reader.search("退款多久到账", 1)[0].doc_id == "faq.csv"  # copied vectors work
    copied_row = green.export_rows("faq.csv")[0]
    original = {r["id"]: r for r in reader.export_rows("faq.csv")}[copied_row["id"]]
    assert copied_row["dense"] == original["dense"]
    reader.drop_physical(blue)
    assert reader.builds() == [green.collection]


def test_a_plain_collection_of_the_alias_name_is_taken_over(
    tmp_path: Path, embedder: Embedder, kb_dir: Path
) -> None:
    uri = str(tmp_path / "kb.db")
    legacy = KnowledgeStore(uri, "kb", embedder)  # made before aliases were used
    legacy.upsert_chunks(chunk_document(load_document(kb_dir / "policy.md", kb_dir)))
    reader = KnowledgeStore(uri, "kb", embedder, aliased=True)
    assert reader.physical_name() == "kb" and reader.count() == 4

    green = reader.build_store()
    green.upsert_chunks(chunk_document(load_document(kb_dir / "faq.csv", kb_dir)))
    assert reader.switch_alias(green.collection) == "kb"
    assert reader.physical_name() == green.collection
    assert reader.search("发票", 1)[0].doc_id == "faq.csv"
