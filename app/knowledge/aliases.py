"""Collection aliases for blue/green reindexing, on Milvus and on the embedded milvus-lite.

A Milvus server switches an alias in one step, and every reader that names the alias
follows. milvus-lite 2.5 (the embedded default) does not implement aliases, so there the
same operations are kept in a small registry collection of the same Milvus: one row per
alias, naming the collection it serves. Switching is one upsert of that row; readers
resolve the alias through `AliasBook.target`, and a store retries once with a fresh answer
when the collection it had resolved was dropped under it (see `AliasedCollection._run`).

`AliasedCollection` is the store's side of it: the collection name to hand Milvus, the
physical builds behind the alias, and the switch that a reindex makes
(app/knowledge/reindex.py) once its new build is checked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from pymilvus import DataType, MilvusClient

from app.knowledge.connection import unreachable
from app.knowledge.errors import KnowledgeStoreError

REGISTRY = "kb_aliases"
# How long a resolved registry alias (embedded milvus-lite) is trusted before asking again,
# and the answers, per process: a switch made here is seen here at once, elsewhere within it.
_ALIAS_TTL_S = 1.0
_resolved: dict[tuple[str, str], tuple[str, float]] = {}
T = TypeVar("T")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class AliasBook(Protocol):
    """What blue/green reindexing needs of aliases."""

    #: True when Milvus resolves the alias itself (readers may name it directly).
    native: bool

    def target(self, alias: str) -> str | None: ...
    def create(self, collection: str, alias: str) -> None: ...
    def alter(self, collection: str, alias: str) -> None: ...
    def drop(self, alias: str) -> None: ...
    def of(self, collection: str) -> list[str]: ...


class MilvusAliases:
    """Milvus' own aliases (a Milvus server or cluster)."""

    native = True

    def __init__(self, client: MilvusClient, timeout: int | None = None) -> None:
        self._client = client
        self._timeout = timeout

    def target(self, alias: str) -> str | None:
        try:
            described = self._client.describe_alias(alias, timeout=self._timeout)
            return str(described["collection_name"])
        except Exception:  # noqa: BLE001 - "no such alias" has no dedicated exception
            return None

    def create(self, collection: str, alias: str) -> None:
        self._client.create_alias(collection, alias)

    def alter(self, collection: str, alias: str) -> None:
        self._client.alter_alias(collection, alias)

    def drop(self, alias: str) -> None:
        self._client.drop_alias(alias)

    def of(self, collection: str) -> list[str]:
        listed = self._client.list_aliases(collection, timeout=self._timeout)
        return list(listed.get("aliases", []))


class RegistryAliases:
    """Aliases as rows of the ``kb_aliases`` collection (milvus-lite has no alias API)."""

    native = False

    def __init__(self, client: MilvusClient, timeout: int | None = None) -> None:
        self._client = client
        #: For reads on every search's path (None: pymilvus's own retries, minutes).
        self._timeout = timeout
        if not client.has_collection(REGISTRY):
            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("alias", DataType.VARCHAR, is_primary=True, max_length=255)
            schema.add_field("target", DataType.VARCHAR, max_length=255)
            schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus requires one
            index = client.prepare_index_params()
            index.add_index("unused", index_type="FLAT", metric_type="L2")
            try:
                client.create_collection(
                    REGISTRY, schema=schema, index_params=index, consistency_level="Strong"
                )
            except Exception:
                if not client.has_collection(REGISTRY):  # another process made it meanwhile
                    raise
        client.load_collection(REGISTRY)

    def target(self, alias: str) -> str | None:
        rows = self._client.query(
            REGISTRY,
            filter=f"alias == {_quote(alias)}",
            output_fields=["target"],
            consistency_level="Strong",
            timeout=self._timeout,
        )
        return str(rows[0]["target"]) if rows else None

    def _put(self, collection: str, alias: str) -> None:
        row: dict[str, Any] = {"alias": alias, "target": collection, "unused": [0.0, 0.0]}
        self._client.upsert(REGISTRY, [row])

    def create(self, collection: str, alias: str) -> None:
        if self.target(alias) is not None:
            raise ValueError(f"alias {alias!r} already exists")
        self._put(collection, alias)

    def alter(self, collection: str, alias: str) -> None:
        self._put(collection, alias)

    def drop(self, alias: str) -> None:
        self._client.delete(REGISTRY, filter=f"alias == {_quote(alias)}")

    def of(self, collection: str) -> list[str]:
        rows = self._client.query(
            REGISTRY,
            filter=f"target == {_quote(collection)}",
            output_fields=["alias"],
            consistency_level="Strong",
            timeout=self._timeout,
        )
        return [str(r["alias"]) for r in rows]


def alias_book(client: MilvusClient, timeout: int | None = None) -> AliasBook:
    """Milvus' aliases where the server implements them, the registry otherwise; reads
    give up after ``timeout`` seconds."""
    quiet = logging.getLogger("pymilvus.decorators")  # it logs every failed call as an ERROR
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        client.list_aliases("")
    except Exception as exc:  # noqa: BLE001 - gRPC's UNIMPLEMENTED comes through as is
        if "UNIMPLEMENTED" in repr(exc) or "unimplemented" in str(exc).lower():
            return RegistryAliases(client, timeout)
    finally:
        quiet.setLevel(level)
    return MilvusAliases(client, timeout)


class AliasedCollection:
    """The store's collection behind an alias: resolving it, switching it, its builds
    (a part of `KnowledgeStore`)."""

    #: Set by the other parts of the store (see `KnowledgeStore.__init__`).
    uri: str
    collection: str
    aliased: bool
    request_timeout: int
    _ready: bool
    _lock: threading.Lock
    _book: AliasBook | None

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
            if not self.aliased or unreachable(exc) or self._aliases().native:
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
