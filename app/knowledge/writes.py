"""Writing chunks: rows built from chunks, embedding only what is new, upserts that never
leave a reader with nothing, deletes, flushes, and rows copied in from another build.

Separate because writes have their own rule that no search needs to know: milvus-lite
applies an upsert's delete before its insert, so a chunk is rewritten as a new row and
its old row retired after (`ChunkWrites.upsert_chunks`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from pymilvus import MilvusClient

from app.knowledge.chunking import Chunk
from app.knowledge.embedding import Embedder
from app.knowledge.errors import KnowledgeStoreError
from app.knowledge.lexical import analyzed
from app.knowledge.schema import (
    _LIMITS,
    _QUERY_PAGE,
    MAX_TERMS_BYTES,
    MAX_TEXT_BYTES,
    _any_of,
    quote,
)

_GET_BATCH = 256
_DELETE_BATCH = 1000


def _clip(value: str, max_bytes: int) -> str:
    data = value.encode("utf-8")
    if len(data) <= max_bytes:
        return value
    return data[:max_bytes].decode("utf-8", errors="ignore")


def _terms_of(text: str) -> str:
    """The BM25 terms of a chunk, whole terms only within the field's byte limit."""
    terms = analyzed(text)
    if len(terms.encode("utf-8")) <= MAX_TERMS_BYTES:
        return terms
    return _clip(terms, MAX_TERMS_BYTES).rsplit(" ", 1)[0]


def _batched(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _deleted_count(result: Any) -> int:
    """pymilvus returns {"delete_count": n} from Milvus, a list of ids from milvus-lite, and
    an empty dict when nothing matched."""
    if isinstance(result, dict):
        return int(result.get("delete_count", 0) or 0)
    try:
        return len(result)
    except TypeError:
        return 0


class ChunkWrites:
    """Inserts, upserts, deletes and flushes of chunks (a part of `KnowledgeStore`)."""

    #: Set by the other parts of the store (see `KnowledgeStore.__init__`).
    embedder: Embedder
    _embed_batch_size: int

    def import_rows(self, rows: Sequence[dict[str, Any]]) -> int:
        """Write rows from `export_rows` of another collection built with the same model
        (into a collection nobody reads yet: a reindex's new build)."""
        client, name = self._ready_client(), self._name()
        for batch in _batched(list(rows), _GET_BATCH):
            client.upsert(name, list(batch))
        return len(rows)

    def _row(self, chunk: Chunk, vector: list[float], generation: str) -> dict[str, Any]:
        if len(chunk.text.encode("utf-8")) > MAX_TEXT_BYTES:
            raise ValueError(
                f"{chunk.source} #{chunk.position}: chunk text is over {MAX_TEXT_BYTES} bytes; "
                "shorten that entry"
            )
        if len(vector) != self.embedder.dim:
            raise KnowledgeStoreError(
                f"embedder {self.embedder.name!r} returned {len(vector)} dimensions, "
                f"expected {self.embedder.dim}"
            )
        return {
            "id": f"{chunk.chunk_id}.{generation}",
            "chunk_id": chunk.chunk_id,
            "doc_id": _clip(chunk.doc_id, _LIMITS["doc_id"]),
            "doc_sha256": chunk.doc_sha256,
            "kind": chunk.kind,
            "category": _clip(chunk.category, _LIMITS["category"]),
            "source": _clip(chunk.source, _LIMITS["source"]),
            "section": _clip(chunk.section, _LIMITS["section"]),
            "position": int(chunk.position),
            "text": chunk.text,
            "terms": _terms_of(chunk.text),
            "dense": vector,
            "metadata": chunk.metadata,
        }

    def _stored(
        self, client: MilvusClient, name: str, chunk_ids: Sequence[str]
    ) -> tuple[dict[str, list[float]], list[str]]:
        """(vector per chunk id, keys of the rows holding these chunks now). A chunk id hashes
        the chunk's text, and the collection is bound to one embedder, so vectors are reused
        as they are."""
        vectors: dict[str, list[float]] = {}
        keys: list[str] = []
        for batch in _batched(list(chunk_ids), _GET_BATCH):
            rows = client.query(
                name,
                filter=_any_of("chunk_id", batch),
                output_fields=["chunk_id", "dense"],
                limit=_QUERY_PAGE,
                consistency_level="Strong",
            )
            for row in rows:
                keys.append(str(row["id"]))
                vector = row.get("dense")
                if vector is not None and len(vector) == self.embedder.dim:
                    vectors[str(row["chunk_id"])] = [float(x) for x in vector]
        return vectors, keys

    def upsert_chunks(self, chunks: Iterable[Chunk], *, flush: bool = True) -> int:
        """Insert or replace chunks by chunk id; returns how many were written.

        Never an in-place upsert: milvus-lite applies an upsert's delete before its insert,
        and a search in between finds neither. Each write adds rows under new keys, then
        retires the rows that held these chunks, so readers always find one (for a moment
        two, which `search` folds). Only chunks whose id is new are embedded. Flushes at the
        end by default, sealing the rows into indexed segments.
        """
        client, name = self._ready_client(), self._name()
        unique = list({c.chunk_id: c for c in chunks}.values())
        if not unique:
            return 0
        reuse, retired = self._stored(client, name, [c.chunk_id for c in unique])
        generation = f"{time.time_ns():x}"
        for batch in _batched(unique, self._embed_batch_size):
            todo = [c for c in batch if c.chunk_id not in reuse]
            reuse.update(self._embed(todo))
            client.insert(name, [self._row(c, reuse[c.chunk_id], generation) for c in batch])
        for batch in _batched(retired, _DELETE_BATCH):
            client.delete(name, ids=list(batch))
        if flush:
            client.flush(name)
        return len(unique)

    def _embed(self, chunks: Sequence[Chunk]) -> dict[str, list[float]]:
        """Vectors by chunk id: FAQ questions as queries, everything else as passages."""
        questions = [c for c in chunks if c.embeds_as_query]
        passages = [c for c in chunks if not c.embeds_as_query]
        out: dict[str, list[float]] = {}
        if questions:
            vectors = self.embedder.embed_queries([c.text for c in questions])
            out.update(zip((c.chunk_id for c in questions), vectors, strict=True))
        if passages:
            vectors = self.embedder.embed_passages([c.embed_text or c.text for c in passages])
            out.update(zip((c.chunk_id for c in passages), vectors, strict=True))
        return out

    def delete_chunks(self, chunk_ids: Iterable[str], *, flush: bool = True) -> int:
        """Delete chunks by chunk id; returns how many ids were asked to go."""
        client, name = self._ready_client(), self._name()
        ids = sorted(set(chunk_ids))
        for batch in _batched(ids, _DELETE_BATCH):
            client.delete(name, filter=_any_of("chunk_id", batch))
        if ids and flush:
            client.flush(name)
        return len(ids)

    def delete_document(self, doc_id: str, *, flush: bool = True) -> int:
        """Delete every chunk of a document; returns the number of chunks deleted."""
        client, name = self._ready_client(), self._name()
        before = self.count(doc_id=doc_id)
        if before == 0:
            return 0
        result = client.delete(name, filter=f"doc_id == {quote(doc_id)}")
        if flush:
            client.flush(name)
        return _deleted_count(result) or before

    def flush(self) -> None:
        """Seal written rows into indexed segments (see upsert_chunks)."""
        self._ready_client().flush(self._name())
