"""Collection aliases for blue/green reindexing, on Milvus and on the embedded milvus-lite.

A Milvus server switches an alias in one step, and every reader that names the alias
follows. milvus-lite 2.5 (the embedded default) does not implement aliases, so there the
same operations are kept in a small registry collection of the same Milvus: one row per
alias, naming the collection it serves. Switching is one upsert of that row; readers
resolve the alias through `AliasBook.target`, and a store retries once with a fresh answer
when the collection it had resolved was dropped under it (see ``KnowledgeStore._run``).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from pymilvus import DataType, MilvusClient

REGISTRY = "kb_aliases"


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
