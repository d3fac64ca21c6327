"""The Milvus collection that holds knowledge chunks, and hybrid (dense + BM25) search over it.

`KnowledgeStore` wraps pymilvus.MilvusClient so that the rest of the app never builds a
filter expression or a schema. The same code runs on embedded milvus-lite (a local ``.db``
file, one process; or `app.knowledge.milvus_server` reached over http) and on a Milvus
server or cluster. The class is assembled here from parts with one job each:

- app/knowledge/connection.py: connecting to Milvus, timeouts, health, closing;
- app/knowledge/schema.py: the collection's fields, indexes and BM25 function; creating,
  checking and loading it;
- app/knowledge/aliases.py: the alias in front of the collection, its builds and the switch
  a reindex makes (app/knowledge/reindex.py);
- app/knowledge/writes.py: upserts, deletes and flushes of chunks;
- app/knowledge/reads.py: counts and rows by filter;
- app/knowledge/search.py: dense, BM25 and hybrid search (the two rankings fused in
  app/knowledge/fusion.py).

Import the store and its types from here; the names below are re-exported for that.
"""

from __future__ import annotations

import threading
import time

from app.knowledge.aliases import AliasBook, AliasedCollection
from app.knowledge.connection import MilvusConnection
from app.knowledge.embedding import Embedder
from app.knowledge.errors import (
    EmbedderMismatch,
    KnowledgeStoreError,
    OutdatedCollection,
    StoreUnavailable,
)
from app.knowledge.reads import RowReads
from app.knowledge.schema import (
    ANALYZER_PARAMS,
    ENTRY_FIELDS,
    MAX_TERMS_BYTES,
    MAX_TEXT_BYTES,
    PROP_DIM,
    PROP_MODEL,
    PROP_SCHEMA,
    SCHEMA_VERSION,
    CollectionSchema,
    HiddenDocuments,
    quote,
)
from app.knowledge.search import SEARCH_MODES, Hit, HybridSearch, SearchMode
from app.knowledge.writes import ChunkWrites

__all__ = [
    "ANALYZER_PARAMS",
    "ENTRY_FIELDS",
    "MAX_TERMS_BYTES",
    "MAX_TEXT_BYTES",
    "PROP_DIM",
    "PROP_MODEL",
    "PROP_SCHEMA",
    "SCHEMA_VERSION",
    "SEARCH_MODES",
    "EmbedderMismatch",
    "HiddenDocuments",
    "Hit",
    "KnowledgeStore",
    "KnowledgeStoreError",
    "OutdatedCollection",
    "SearchMode",
    "StoreUnavailable",
    "quote",
]


class KnowledgeStore(
    MilvusConnection, CollectionSchema, AliasedCollection, ChunkWrites, RowReads, HybridSearch
):
    """Chunks of knowledge documents in one Milvus collection (or alias).

    Thread-safe: the underlying gRPC client is shared by all threads of a process. Nothing
    touches Milvus until the first call, so a web process starts even while Milvus is down.
    """

    def __init__(
        self,
        uri: str,
        collection: str,
        embedder: Embedder,
        *,
        token: str = "",
        connect_timeout: float = 10.0,
        request_timeout: int = 10,
        embed_batch_size: int = 64,
        rrf_k: int = 60,
        aliased: bool = False,
        hidden_documents: HiddenDocuments | None = None,
    ) -> None:
        MilvusConnection.__init__(
            self,
            uri,
            token=token,
            connect_timeout=connect_timeout,
            request_timeout=request_timeout,
        )
        self.collection = collection
        #: True: ``collection`` is an alias, created on first use in front of a physical
        #: collection ``<alias>__<stamp>``, so that a reindex can swap what it names.
        self.aliased = aliased
        self.embedder = embedder
        #: Names the documents switched off now, asked at every search and FAQ table read
        #: (app/knowledge/enabling.py); None: every document is searched. A build store
        #: (`build_store`) has none: a reindex copies and checks every document's chunks.
        self.hidden_documents = hidden_documents
        self._embed_batch_size = max(1, embed_batch_size)
        self._rrf_k = rrf_k
        self._ready = False
        self._lock = threading.Lock()
        self._book: AliasBook | None = None

    def build_store(self, name: str | None = None) -> KnowledgeStore:
        """A store on a new physical collection ``<alias>__<stamp>`` (or ``name``), sharing
        this store's connection and embedder: build it, then `switch_alias` to it."""
        store = KnowledgeStore(
            self.uri,
            name
            or f"{self.collection}__{time.strftime('%Y%m%d%H%M%S')}_{time.time_ns() % 10**6:06d}",
            self.embedder,
            token=self._token,
            connect_timeout=self._connect_timeout,
            embed_batch_size=self._embed_batch_size,
            rrf_k=self._rrf_k,
        )
        store._client = self._connect()
        store._book = self._book
        return store
