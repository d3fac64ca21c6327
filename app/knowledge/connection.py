"""The store's connection to Milvus: opening the client, its timeouts, health and closing.

Separate from the collection and its searches because it is the one part that knows how
Milvus is reached: an embedded milvus-lite ``.db`` (one process), `app.knowledge.milvus_server`
over http, or a Milvus server or cluster. ``MILVUS_TIMEOUT_S`` arrives here as both the
connect timeout and the per-request timeout (app/resources.py). There is no reconnect
loop: the client is made on first use, and a store whose Milvus was down tries again at
its next call; `unreachable` tells a server that is down from other failures, so that
`app.knowledge.aliases.AliasedCollection._run` does not wait a second timeout on it.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

from pymilvus import MilvusClient

from app.knowledge.errors import StoreUnavailable

# pymilvus starts a private milvus-lite server when a client opens a .db path; two threads
# doing that at once race for its lock, so client creation is serialised per process.
_client_creation = threading.Lock()


class MilvusConnection:
    """One pymilvus client per store, made on first use (a part of `KnowledgeStore`)."""

    #: Set by the other parts of the store (see `KnowledgeStore.__init__`).
    collection: str
    _ready: bool
    _book: object | None

    def __init__(
        self,
        uri: str,
        *,
        token: str = "",
        connect_timeout: float = 10.0,
        request_timeout: int = 10,
    ) -> None:
        self.uri = uri
        self._token = token
        self._connect_timeout = connect_timeout
        #: Seconds a search or read may take, retries included: pymilvus retries a server
        #: that is down 75 times over minutes unless given a timeout, and only an int one.
        self.request_timeout = max(1, int(request_timeout))
        self._client: MilvusClient | None = None
        self._connecting = threading.Lock()

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


def unreachable(exc: Exception) -> bool:
    """Whether ``exc`` says the server could not be reached at all (gRPC's UNAVAILABLE)."""
    text = str(exc)
    return "UNAVAILABLE" in text or "failed to connect" in text
