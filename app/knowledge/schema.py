"""The knowledge collection's shape: its fields, indexes and BM25 function, the properties
that bind it to one embedding model, and creating, checking and loading it.

Separate from searching and writing because it changes for other reasons (a new field, a
new index type, a schema version) and because every other part reads its constants (field
names, byte limits). Filter expressions over these fields are built here too (`quote`).

BM25 is computed by Milvus itself over the ``terms`` field, which holds the text's terms as
this app splits them (app/knowledge/lexical.py: characters and character pairs, the words
of asking left out) behind a whitespace analyzer: it is what makes Chinese keyword matches
work even with an embedding model that is weak at Chinese, and dense vectors catch
paraphrases that share no words (app/knowledge/search.py, app/knowledge/fusion.py).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

from pymilvus import DataType, Function, FunctionType, MilvusClient

from app.knowledge.embedding import Embedder
from app.knowledge.errors import EmbedderMismatch, KnowledgeStoreError, OutdatedCollection
from app.knowledge.lexical import TERMS_VERSION

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


def quote(value: str) -> str:
    """A Milvus string literal. Filter templates (``filter_params``) would be cleaner, but
    milvus-lite does not parse them, and JSON escapes (``\\uXXXX``) are rejected too."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    return f'"{escaped}"'


def _any_of(field_name: str, values: Iterable[str]) -> str:
    return f"{field_name} in [{', '.join(quote(v) for v in values)}]"


def both(*exprs: str) -> str:
    """The filter expressions that are not empty, all of them holding."""
    parts = [e for e in exprs if e]
    return " and ".join(f"({e})" for e in parts) if len(parts) > 1 else "".join(parts)


#: Names the documents no reader may find now (switched off: app/knowledge/enabling.py).
HiddenDocuments = Callable[[], Iterable[str]]


def not_hidden(hidden: HiddenDocuments | None) -> str:
    """A filter leaving out the rows of the documents ``hidden`` names now; "" when it names
    none, so a knowledge base with every document on searches exactly as before."""
    ids = sorted(hidden()) if hidden is not None else []
    return f"doc_id not in [{', '.join(quote(v) for v in ids)}]" if ids else ""


def _properties_of(description: dict[str, Any]) -> dict[str, Any]:
    """The app's collection properties: Milvus keeps them as properties, milvus-lite only in
    the schema's description (see `CollectionSchema._schema`)."""
    props = dict(description.get("properties") or {})
    if PROP_MODEL not in props:
        try:
            stored = json.loads(description.get("description") or "{}")
        except ValueError:
            stored = {}
        if isinstance(stored, dict):
            props.update({k: v for k, v in stored.items() if isinstance(k, str)})
    return props


class CollectionSchema:
    """Creating, checking and loading the collection (a part of `KnowledgeStore`)."""

    #: Set by the other parts of the store (see `KnowledgeStore.__init__`).
    uri: str
    collection: str
    aliased: bool
    embedder: Embedder
    _ready: bool
    _lock: threading.Lock

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

    def embedding_model(self) -> str:
        """The embedding model recorded on the collection ("" when it has none)."""
        description = self._connect().describe_collection(self._name(refresh=True))
        return str(_properties_of(description).get(PROP_MODEL, ""))
