"""The Milvus collection that holds knowledge chunks, and hybrid (dense + BM25) search over it.

One class wraps pymilvus.MilvusClient so that the rest of the app never builds a filter
expression or a schema. The same code runs on embedded milvus-lite (a local ``.db`` file, one
process; or `app.knowledge.milvus_server` reached over http) and on a Milvus server or cluster.

BM25 is computed by Milvus itself over the ``terms`` field, which holds the text's terms as
this app splits them (app/knowledge/lexical.py: characters and character pairs, the words
of asking left out) behind a whitespace analyzer: it is what makes Chinese keyword matches
work even with an embedding model that is weak at Chinese, and dense vectors catch
paraphrases that share no words. How the two are combined, and how an FAQ entry's
question rows fold back into the entry, is app/knowledge/fusion.py.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from pymilvus import DataType, Function, FunctionType, MilvusClient

from app.knowledge.aliases import AliasBook, alias_book
from app.knowledge.chunking import FAQ, FAQ_QUESTION, Chunk, faq_entry_text
from app.knowledge.embedding import Embedder
from app.knowledge.fusion import Candidate, fuse
from app.knowledge.lexical import TERMS_VERSION, analyzed

SearchMode = Literal["hybrid", "dense", "bm25"]
SEARCH_MODES: tuple[str, ...] = ("hybrid", "dense", "bm25")

#: 2: rows keyed by chunk and write, `chunk_id` a field; 3: BM25 over `terms` (our own
#: split), a row per FAQ question. The terms' own version is part of it.
SCHEMA_VERSION = f"3.{TERMS_VERSION}"
PROP_MODEL = "kb.embedding_model"
PROP_DIM = "kb.embedding_dim"
PROP_SCHEMA = "kb.schema_version"

# VARCHAR limits are in bytes (UTF-8: a Chinese character takes 3).
MAX_TEXT_BYTES = 65535
_LIMITS = {
    "id": 64,
    "chunk_id": 64,
    "doc_id": 1024,
    "doc_sha256": 64,
    "kind": 16,
    "category": 256,
    "source": 2048,
    "section": 1024,
}
MAX_TERMS_BYTES = 65535
#: The terms are split by app/knowledge/lexical.py; Milvus only separates them.
ANALYZER_PARAMS: dict[str, Any] = {"tokenizer": "whitespace"}
_OUTPUT_FIELDS = [
    "chunk_id",
    "doc_id",
    "kind",
    "category",
    "source",
    "section",
    "position",
    "text",
    "metadata",
]
#: What a Milvus query returns of the app's fields, the vector included (FAQ tables).
ENTRY_FIELDS = [*_OUTPUT_FIELDS, "dense"]
_QUERY_PAGE = 16384  # Milvus' cap on offset + limit for one query
_GET_BATCH = 256
_DELETE_BATCH = 1000

# pymilvus starts a private milvus-lite server when a client opens a .db path; two threads
# doing that at once race for its lock, so client creation is serialised per process.
_client_creation = threading.Lock()
# How long a resolved registry alias (embedded milvus-lite) is trusted before asking again,
# and the answers, per process: a switch made here is seen here at once, elsewhere within it.
_ALIAS_TTL_S = 1.0
_resolved: dict[tuple[str, str], tuple[str, float]] = {}
T = TypeVar("T")


class KnowledgeStoreError(RuntimeError):
    """Base class for knowledge store failures worth showing to an operator as they are."""

    def client_message(self) -> str:
        """The message for an API response: as it is, unless it quotes a driver's error."""
        return str(self)


class StoreUnavailable(KnowledgeStoreError):
    """Milvus cannot be reached (or a local .db is held by another process)."""

    def client_message(self) -> str:
        # The message quotes pymilvus's exception: the log has it, API clients do not.
        return "Milvus cannot be reached; retry later"


class OutdatedCollection(KnowledgeStoreError):
    """The collection was built by an older version of the app: a reindex rebuilds it."""


class EmbedderMismatch(KnowledgeStoreError):
    """The collection was built with another embedding model than the one configured."""


@dataclass(frozen=True)
class Hit:
    """One search result: a document passage or a whole FAQ entry. ``score`` is the fused
    score (hybrid), the dense score (dense) or BM25 (bm25): compare scores only within one
    mode. ``similarity`` is the query's cosine with the passage (for an FAQ entry, with its
    question and answer) and ``match`` the cosine with the nearest of an FAQ entry's
    questions, in every mode but bm25 where the search saw them."""

    chunk_id: str
    doc_id: str
    kind: str
    text: str
    score: float
    source: str
    section: str
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    category: str = ""
    position: int = 0
    similarity: float | None = None
    match: float | None = None

    @property
    def relevance(self) -> float | None:
        """The closest of the two cosines: what a caller's score threshold compares."""
        known = [v for v in (self.similarity, self.match) if v is not None]
        return max(known) if known else None


def quote(value: str) -> str:
    """A Milvus string literal. Filter templates (``filter_params``) would be cleaner, but
    milvus-lite does not parse them, and JSON escapes (``\\uXXXX``) are rejected too."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    return f'"{escaped}"'


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


def _any_of(field_name: str, values: Iterable[str]) -> str:
    return f"{field_name} in [{', '.join(quote(v) for v in values)}]"


def _properties_of(description: dict[str, Any]) -> dict[str, Any]:
    """The app's collection properties: Milvus keeps them as properties, milvus-lite only in
    the schema's description (see `KnowledgeStore._schema`)."""
    props = dict(description.get("properties") or {})
    if PROP_MODEL not in props:
        try:
            stored = json.loads(description.get("description") or "{}")
        except ValueError:
            stored = {}
        if isinstance(stored, dict):
            props.update({k: v for k, v in stored.items() if isinstance(k, str)})
    return props


def _deleted_count(result: Any) -> int:
    """pymilvus returns {"delete_count": n} from Milvus, a list of ids from milvus-lite, and
    an empty dict when nothing matched."""
    if isinstance(result, dict):
        return int(result.get("delete_count", 0) or 0)
    try:
        return len(result)
    except TypeError:
        return 0


class KnowledgeStore:
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
    ) -> None:
        self.uri = uri
        self.collection = collection
        #: True: ``collection`` is an alias, created on first use in front of a physical
        #: collection ``<alias>__<stamp>``, so that a reindex can swap what it names.
        self.aliased = aliased
        self.embedder = embedder
        self._token = token
        self._connect_timeout = connect_timeout
        #: Seconds a search or read may take, retries included: pymilvus retries a server
        #: that is down 75 times over minutes unless given a timeout, and only an int one.
        self.request_timeout = max(1, int(request_timeout))
        self._embed_batch_size = max(1, embed_batch_size)
        self._rrf_k = rrf_k
        self._client: MilvusClient | None = None
        self._ready = False
        self._lock = threading.Lock()
        self._connecting = threading.Lock()
        self._book: AliasBook | None = None

    # --- connection -------------------------------------------------------------------

    @property
    def is_local(self) -> bool:
        """True for an embedded milvus-lite .db, usable by this process only."""
        return self.uri.endswith(".db")

    def _connect(self, timeout: float | None = None) -> MilvusClient:
        client = self._client
        if client is not None:
            return client
        # Only a local .db needs the process-wide lock: a server's stores each wait on their
        # own, so one store's attempt at a Milvus that is down (10 s) holds up no other.
        with _client_creation if self.is_local else self._connecting:
            if self._client is None:
                if self.is_local:
                    Path(self.uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
                try:
                    # A connection of its own (pymilvus shares one per URI, and another
                    # client's close() would take this store's down with it).
                    self._client = MilvusClient(
                        uri=self.uri,
                        token=self._token,
                        timeout=timeout if timeout is not None else self._connect_timeout,
                        alias=f"kb-{uuid.uuid4().hex}",
                    )
                except Exception as exc:  # noqa: BLE001 - pymilvus raises several kinds
                    hint = (
                        " (a local .db can be opened by one process only: start `python -m "
                        "app.knowledge.milvus_server --data-dir DIR --port N`, use http://host:N)"
                        if self.is_local
                        else ""
                    )
                    message = f"cannot open Milvus at {self.uri}: {exc}{hint}"
                    raise StoreUnavailable(message) from exc
            return self._client

    @property
    def client(self) -> MilvusClient:
        """The pymilvus client, for the rare operation this class does not wrap."""
        return self._connect()

    def ping(self, timeout: float = 2.0) -> bool:
        """Cheap health check for readiness probes; never raises."""
        try:
            self._connect(timeout=timeout).has_collection(self.collection, timeout=timeout)
            return True
        except Exception:  # noqa: BLE001 - a health check reports, it does not fail
            return False

    def close(self) -> None:
        """Release this store's connection. An embedded .db server lives until process exit
        (other stores in the process may share it)."""
        with _client_creation:
            client, self._client = self._client, None
            self._ready = False
            self._book = None
        if client is not None:
            client.close()

    # --- collection -------------------------------------------------------------------

    def _schema(self, client: MilvusClient) -> Any:
        # The properties again in the description: milvus-lite keeps no collection properties.
        schema = client.create_schema(
            auto_id=False, enable_dynamic_field=False, description=json.dumps(self._properties())
        )
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=_LIMITS["id"])
        schema.add_field("chunk_id", DataType.VARCHAR, max_length=_LIMITS["chunk_id"])
        schema.add_field("doc_id", DataType.VARCHAR, max_length=_LIMITS["doc_id"])
        schema.add_field("doc_sha256", DataType.VARCHAR, max_length=_LIMITS["doc_sha256"])
        schema.add_field("kind", DataType.VARCHAR, max_length=_LIMITS["kind"])
        schema.add_field("category", DataType.VARCHAR, max_length=_LIMITS["category"])
        schema.add_field("source", DataType.VARCHAR, max_length=_LIMITS["source"])
        schema.add_field("section", DataType.VARCHAR, max_length=_LIMITS["section"])
        schema.add_field("position", DataType.INT64)
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
        schema.add_field(
            "terms",
            DataType.VARCHAR,
            max_length=MAX_TERMS_BYTES,
            enable_analyzer=True,
            analyzer_params=ANALYZER_PARAMS,
        )
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=self.embedder.dim)
        schema.add_field("metadata", DataType.JSON)
        schema.add_function(
            Function(
                name="text_bm25",
                function_type=FunctionType.BM25,
                input_field_names=["terms"],
                output_field_names=["sparse"],
            )
        )
        return schema

    def _properties(self) -> dict[str, str]:
        return {
            PROP_MODEL: self.embedder.name,
            PROP_DIM: str(self.embedder.dim),
            PROP_SCHEMA: SCHEMA_VERSION,
        }

    def _is_embedded(self) -> bool:
        """milvus-lite (no alias API, FLAT as its only exact index) rather than a server."""
        return not self._aliases().native

    def _index_params(self, client: MilvusClient) -> Any:
        params = client.prepare_index_params()
        if self._is_embedded():
            # milvus-lite offers FLAT and IVF_FLAT. IVF_FLAT searched 100k rows in ~5 ms
            # against FLAT's ~34 ms, but then milvus-lite 2.5 cannot return the vectors of
            # unflushed rows ("Growing segment loss raw data"), which upserts reuse: FLAT.
            params.add_index("dense", index_type="FLAT", metric_type="IP")
        else:
            params.add_index(
                "dense",
                index_type="HNSW",
                metric_type="IP",
                params={"M": 16, "efConstruction": 200},
            )
        params.add_index(
            "sparse",
            index_type="SPARSE_INVERTED_INDEX",
            metric_type="BM25",
            params={"bm25_k1": 1.2, "bm25_b": 0.75},
        )
        params.add_index("chunk_id", index_type="INVERTED")
        params.add_index("doc_id", index_type="INVERTED")
        params.add_index("category", index_type="INVERTED")
        params.add_index("kind", index_type="INVERTED")
        return params

    def _check_compatible(self, description: dict[str, Any]) -> None:
        props = _properties_of(description)
        model = props.get(PROP_MODEL, "")
        dense = next((f for f in description.get("fields", []) if f.get("name") == "dense"), None)
        if dense is None or "text" not in {f.get("name") for f in description.get("fields", [])}:
            raise KnowledgeStoreError(
                f"collection {self.collection!r} at {self.uri} was not created by this app "
                "(no dense/text fields); choose another MILVUS_COLLECTION"
            )
        names = {f.get("name") for f in description.get("fields", [])}
        if (
            "chunk_id" not in names
            or "terms" not in names
            or props.get(PROP_SCHEMA, SCHEMA_VERSION) != SCHEMA_VERSION
        ):
            raise OutdatedCollection(
                f"collection {self.collection!r} at {self.uri} was built by an older version "
                "of this app: rebuild it with `flask kb reindex`"
            )
        dim = int((dense.get("params") or {}).get("dim", 0))
        if dim != self.embedder.dim or (model and model != self.embedder.name):
            raise EmbedderMismatch(
                f"collection {self.collection!r} holds {dim}-dimensional vectors from "
                f"{model or 'an unknown model'!r}, but the configured embedding model "
                f"{self.embedder.name!r} makes {self.embedder.dim}-dimensional ones: set the "
                "embedding model back, or re-index into a new collection"
            )

    def ensure_collection(self) -> None:
        """Create the collection if missing, check it matches the embedder, and load it.

        A reopened collection starts released, and searching it fails until it is loaded.
        """
        with self._lock:
            client = self._connect()
            if self.aliased and self.physical_name() is None:
                self._create_behind_alias(client)
            elif not self.aliased and not client.has_collection(self.collection):
                created = False
                try:
                    client.create_collection(
                        self.collection,
                        schema=self._schema(client),
                        consistency_level="Strong",
                        properties=self._properties(),
                    )
                    created = True
                except Exception:
                    # Another process may have created it in between; anything else is real.
                    if not client.has_collection(self.collection):
                        raise
                if created:
                    # sync=False: pymilvus would poll each index every 0.5 s; an empty
                    # collection's indexes are ready at once and loading waits for them anyway.
                    client.create_index(self.collection, self._index_params(client), sync=False)
            name = self._name(refresh=True)
            self._check_compatible(client.describe_collection(name))
            client.load_collection(name)
            self._ready = True

    def _ready_client(self) -> MilvusClient:
        if not self._ready:
            self.ensure_collection()
        return self._connect()

    def _aliases(self) -> AliasBook:
        if self._book is None:
            self._book = alias_book(self._connect(), self.request_timeout)
        return self._book

    def _name(self, *, refresh: bool = False) -> str:
        """The collection name to hand Milvus: the alias itself where Milvus resolves it,
        else what the registry says it names now (cached for a second)."""
        if not self.aliased or self._aliases().native:
            return self.collection
        key = (self.uri, self.collection)
        now = time.monotonic()
        known = _resolved.get(key)
        if not refresh and known and now - known[1] < _ALIAS_TTL_S:
            return known[0]
        target = self._aliases().target(self.collection) or self.collection
        _resolved[key] = (target, now)
        return target

    def _run(self, op: Callable[[MilvusClient, str], T]) -> T:
        """``op(client, collection)``; where this process resolves the alias itself, a
        reindex may have switched and dropped what it resolved: ask again, once."""
        client = self._ready_client()
        name = self._name()
        try:
            return op(client, name)
        except Exception as exc:
            if not self.aliased or _unreachable(exc) or self._aliases().native:
                raise  # a server that is down is not asked again (another timeout)
            fresh = self._name(refresh=True)
            if fresh == name:
                raise
            return op(client, fresh)

    def drop(self) -> None:
        """Delete the collection and everything in it (for an alias: what it names)."""
        client = self._connect()
        with self._lock:
            physical = self.physical_name()
            if physical is not None and physical != self.collection:
                self._aliases().drop(self.collection)
            if physical is not None:
                client.drop_collection(physical)
            self._ready = False
            _resolved.pop((self.uri, self.collection), None)

    def point_alias(self, alias: str) -> None:
        """Make ``alias`` name this collection: build a new collection, then switch readers
        that use the alias over in one step."""
        self._ready_client()
        book = self._aliases()
        if alias in book.of(self.collection):
            return
        if book.target(alias) is None:
            book.create(self.collection, alias)
        else:
            book.alter(self.collection, alias)
        _resolved.pop((self.uri, alias), None)

    # --- collections behind an alias (blue/green) -----------------------------------

    def _create_behind_alias(self, client: MilvusClient) -> None:
        """First use of an aliased store: a physical collection and the alias in front."""
        build = self.build_store()
        build.ensure_collection()
        try:
            self._aliases().create(build.collection, self.collection)
        except Exception:
            # Another process got there first: serve its collection, drop ours.
            if self.physical_name() in (None, build.collection):
                raise
            client.drop_collection(build.collection)
        _resolved.pop((self.uri, self.collection), None)

    def physical_name(self) -> str | None:
        """The collection the alias names now; the name itself for a plain collection
        (also one created before aliases were used); None when neither exists."""
        target = self._aliases().target(self.collection)
        if target is not None:
            return target
        return self.collection if self._connect().has_collection(self.collection) else None

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

    def builds(self) -> list[str]:
        """Physical collections that belong to this alias (serving or left by a reindex)."""
        prefix = f"{self.collection}__"
        return sorted(n for n in self._connect().list_collections() if n.startswith(prefix))

    def switch_alias(self, target: str) -> str | None:
        """Point the alias at ``target`` in one step; returns what it named before.

        A plain collection carrying the alias' own name (made before aliases were used) must
        be dropped before the alias can take its name: only that first switch has a gap.
        """
        client = self._connect()
        book = self._aliases()
        previous = self.physical_name()
        if previous == self.collection:
            client.drop_collection(self.collection)
            book.create(target, self.collection)
        elif previous is None:
            book.create(target, self.collection)
        else:
            book.alter(target, self.collection)
        self._ready = False
        _resolved.pop((self.uri, self.collection), None)
        return previous

    def drop_physical(self, name: str) -> None:
        """Drop one physical collection of this alias (never the one it serves)."""
        if not name.startswith(f"{self.collection}__") or name == self.physical_name():
            raise KnowledgeStoreError(f"refusing to drop {name!r}: it is not a spare build")
        client = self._connect()
        if client.has_collection(name):
            client.drop_collection(name)

    def embedding_model(self) -> str:
        """The embedding model recorded on the collection ("" when it has none)."""
        description = self._connect().describe_collection(self._name(refresh=True))
        return str(_properties_of(description).get(PROP_MODEL, ""))

    def export_rows(self, doc_id: str) -> list[dict[str, Any]]:
        """Every stored field of a document's chunks, vectors included (BM25's sparse vector
        excepted: Milvus derives it from the terms on insert)."""
        fields = ["id", "doc_sha256", "dense", "terms", *_OUTPUT_FIELDS]
        rows = self._query_all(f"doc_id == {quote(doc_id)}", fields)
        return [{k: v for k, v in row.items() if k in fields} for row in rows]

    def import_rows(self, rows: Sequence[dict[str, Any]]) -> int:
        """Write rows from `export_rows` of another collection built with the same model
        (into a collection nobody reads yet: a reindex's new build)."""
        client, name = self._ready_client(), self._name()
        for batch in _batched(list(rows), _GET_BATCH):
            client.upsert(name, list(batch))
        return len(rows)

    # --- writing ----------------------------------------------------------------------

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

    # --- reading ----------------------------------------------------------------------

    def _query_all(self, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        def query(client: MilvusClient, name: str) -> list[dict[str, Any]]:
            rows = client.query(
                name,
                filter=expr,
                output_fields=fields,
                limit=_QUERY_PAGE,
                consistency_level="Strong",
            )
            if len(rows) < _QUERY_PAGE:
                return list(rows)
            out: list[dict[str, Any]] = []
            iterator = client.query_iterator(
                name, batch_size=1000, filter=expr, output_fields=fields
            )
            try:
                while batch := iterator.next():
                    out.extend(batch)
            finally:
                iterator.close()
            return out

        return self._run(query)

    def count(self, *, doc_id: str | None = None) -> int:
        """Number of chunks, in the whole collection or in one document."""
        expr = f"doc_id == {quote(doc_id)}" if doc_id is not None else ""
        rows = self._run(
            lambda client, name: client.query(
                name, filter=expr, output_fields=["count(*)"], consistency_level="Strong"
            )
        )
        return int(rows[0]["count(*)"]) if rows else 0

    def has_rows(self, *, category: str | None = None, doc_id: str | None = None) -> bool:
        """Whether any chunk matches these filters (an empty search may just find nothing)."""
        expr = self._filter(category, doc_id)
        rows = self._run(
            lambda client, name: client.query(name, filter=expr, output_fields=["id"], limit=1)
        )
        return bool(rows)

    def chunk_ids(self, doc_id: str) -> set[str]:
        """Ids of the chunks currently stored for a document."""
        rows = self._query_all(f"doc_id == {quote(doc_id)}", ["chunk_id"])
        return {str(r["chunk_id"]) for r in rows}

    def document_hashes(self) -> dict[str, str]:
        """doc_id -> sha256 of the file version each indexed document was built from."""
        rows = self._query_all("position == 0", ["doc_id", "doc_sha256"])
        return {str(r["doc_id"]): str(r["doc_sha256"]) for r in rows}

    def _filter(self, category: str | None, doc_id: str | None) -> str:
        parts = []
        if category:
            parts.append(f"category == {quote(category)}")
        if doc_id:
            parts.append(f"doc_id == {quote(doc_id)}")
        return " and ".join(parts)

    def search(
        self,
        query: str,
        top_k: int = 5,
        *,
        category: str | None = None,
        doc_id: str | None = None,
        mode: SearchMode = "hybrid",
    ) -> list[Hit]:
        """The ``top_k`` passages and FAQ entries most relevant to ``query``, best first.

        hybrid: dense and BM25 evidence fused (app/knowledge/fusion.py); dense: embedding
        similarity only; bm25: keyword relevance only. An FAQ entry found by one of its
        questions comes back whole, once.
        """
        if mode not in SEARCH_MODES:
            raise ValueError(f"mode must be one of {', '.join(SEARCH_MODES)}, not {mode!r}")
        query = query.strip()
        if not query or top_k < 1:
            return []
        expr = self._filter(category, doc_id)
        terms = analyzed(query) if mode != "dense" else ""
        query_vector: list[float] | None = None
        if mode != "bm25":
            query_vector = self.embedder.embed_queries([query])[0]
        # An entry has a row per question besides its own: ask for enough rows that
        # ``top_k`` distinct entries and passages remain after folding.
        rows = max(top_k * 8, 40)

        def run(client: MilvusClient, name: str) -> tuple[list[Any], list[Any]]:
            dense: list[Any] = []
            keyword: list[Any] = []
            if query_vector is not None:
                dense = client.search(
                    name,
                    data=[query_vector],
                    anns_field="dense",
                    filter=expr,
                    limit=rows,
                    output_fields=_OUTPUT_FIELDS,
                    search_params={"metric_type": "IP", "params": {"ef": max(64, rows)}},
                    timeout=self.request_timeout,
                )[0]
            if terms:
                # Question rows are left out: BM25 weighs an entry's words as a whole.
                entries = f'kind != "{FAQ_QUESTION}"'
                keyword = client.search(
                    name,
                    data=[terms],
                    anns_field="sparse",
                    filter=f"({expr}) and {entries}" if expr else entries,
                    limit=max(top_k * 4, 20),
                    output_fields=_OUTPUT_FIELDS,
                    search_params={"metric_type": "BM25"},
                    timeout=self.request_timeout,
                )[0]
            return list(dense), list(keyword)

        try:
            dense, keyword = self._run(run)
        except Exception as exc:
            # milvus-lite cannot score BM25 in a collection that never held a row (its
            # average document length is 0/0); nothing to find there anyway.
            if "Invalid sparse row" in str(exc) and self.count() == 0:
                return []
            raise
        ranked = fuse(dense, keyword if mode != "dense" else [], top_k)
        return [self._hit(c) for c in ranked]

    def faq_rows(self, filter_expr: str = "", limit: int = _QUERY_PAGE) -> list[dict[str, Any]]:
        """FAQ entry and question rows with their vectors (the web processes' FAQ table)."""
        kinds = _any_of("kind", [FAQ, FAQ_QUESTION])
        expr = f"({filter_expr}) and {kinds}" if filter_expr else kinds
        return self._run(
            lambda client, name: list(
                client.query(
                    name,
                    filter=expr,
                    output_fields=ENTRY_FIELDS,
                    limit=limit,
                    timeout=self.request_timeout,
                )
            )
        )

    def question_similarity(
        self, questions: Sequence[str], others: Sequence[str]
    ) -> list[list[float]]:
        """Cosine similarity of each of ``questions`` with each of ``others``, all embedded
        as queries (question against question: FAQ entries and their paraphrases)."""
        if not questions or not others:
            return [[] for _ in questions]
        vectors = self.embedder.embed_queries([*questions, *others])
        asked, known = vectors[: len(questions)], vectors[len(questions) :]
        return [
            [float(sum(a * b for a, b in zip(q, k, strict=True))) for k in known] for q in asked
        ]

    def _hit(self, cand: Candidate) -> Hit:
        entity = cand.entity
        metadata = entity.get("metadata") or {}
        metadata = dict(metadata) if isinstance(metadata, dict) else {}
        kind, chunk_id, text = (
            str(entity.get("kind", "")),
            str(entity.get("chunk_id", "")),
            str(entity.get("text", "")),
        )
        if cand.from_question:
            # Only a question row came back: it carries the entry's own fields.
            kind, chunk_id = FAQ, str(metadata.pop("entry_chunk_id", chunk_id))
            text = faq_entry_text(
                str(metadata.get("question", "")),
                [str(v) for v in metadata.get("similar_questions") or []],
                str(metadata.get("answer", "")),
            )
        return Hit(
            chunk_id=chunk_id,
            doc_id=str(entity.get("doc_id", "")),
            kind=kind,
            text=text,
            score=cand.score,
            source=str(entity.get("source", "")),
            section=str(entity.get("section", "")),
            metadata=metadata,
            category=str(entity.get("category", "")),
            position=int(entity.get("position", 0) or 0),
            similarity=cand.similarity,
            match=cand.match,
        )


def _unreachable(exc: Exception) -> bool:
    """Whether ``exc`` says the server could not be reached at all (gRPC's UNAVAILABLE)."""
    text = str(exc)
    return "UNAVAILABLE" in text or "failed to connect" in text
