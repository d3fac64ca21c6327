"""What the knowledge store raises, in a module of its own so that every part of the store
(connection, schema, aliases, writes) and its callers share one set of exceptions without
importing each other. ``app.knowledge.store`` re-exports them.
"""

from __future__ import annotations


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
