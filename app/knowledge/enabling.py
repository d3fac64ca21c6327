"""Switching a document off and on without deleting it (issue 16).

A document switched off stays listed, with its versions and its chunks, but nothing of it
is found: not by hit testing, the answer pipeline, Dify's retrieval or the tools (every
search of `KnowledgeStore`), nor by the FAQ table that answers verbatim (its rows are read
through the same store). Switched on again, it is found at once.

How: the flag lives only in the documents table (``Document.enabled``), and every search
leaves out the documents switched off now with a filter on the chunks' ``doc_id``
(``DisabledDocuments`` names them, ``KnowledgeStore.hidden_documents`` asks it). Deleting
the chunks on switching off and writing them back on switching on was the other way; it
was not taken because:

- switching on would embed the whole document again (minutes for a large one, and none
  while Milvus or the embedder is down), where the filter makes it one row's update;
- the chunks would have to be kept from every writer in between (an indexing that
  finishes, an FAQ edit published, the nightly reindex that copies the serving chunks),
  where the filter lets them write as before: nothing in the index says "off";
- the preview of a switched-off document's chunks reads them where they are.

What it costs: one small query of the documents table per search (about 0.4 ms on
PostgreSQL with 2,000 documents; the embedding alone takes 5-15 ms), and with no document
off no filter at all, so Milvus searches exactly as before. With some off, milvus-lite's
search over 20,000 chunks took about 1 ms longer (``doc_id`` has an inverted index).

Across processes: each web process and worker asks the database at each search, so there
is nothing to invalidate; their FAQ tables are read again within ``POLL_S`` (2 s) of the
change, which moves the documents' ``updated_at`` (app/faq/publishing.py
``change_stamp``).
"""

from __future__ import annotations

import logging
import os
import threading
import time

import sqlalchemy as sa

from app.accounts import audit
from app.extensions import db
from app.knowledge.documents import get_document
from app.store import Document

log = logging.getLogger(__name__)


def set_enabled(doc_id: str, enabled: bool, *, actor: str) -> tuple[Document, bool]:
    """Switch a document on or off; returns it and whether anything changed (switching it
    to what it is already is no change and no audit entry). Raises NotFound (404)."""
    doc = get_document(doc_id)
    if doc.enabled == enabled:
        return doc, False
    doc.enabled = enabled
    doc.updated_by = actor  # updated_at moves too: every process's FAQ table reads again
    audit.record(actor, "enable" if enabled else "disable", doc_id, version=doc.version)
    db.session.commit()
    return doc, True


class DisabledDocuments:
    """The ids of the documents switched off now, read from the database at each call (a
    `KnowledgeStore`'s ``hidden_documents``).

    It has a small connection pool of its own, as searches also run where no Flask app
    context is (the FAQ table's thread). While the database cannot be read it answers what
    it read last, so a brief outage neither fails every search nor brings back what staff
    switched off; the outage is logged once, and the database is tried again only every
    ``RETRY_S``, so searches during an outage do not each wait ``connect_timeout_s``."""

    QUERY = sa.text("SELECT id FROM documents WHERE enabled = false")
    RETRY_S = 5.0

    def __init__(self, database_url: str, connect_timeout_s: float = 3.0) -> None:
        self._url = database_url
        self._connect_timeout_s = connect_timeout_s
        self._failed_at = 0.0
        self._engine: sa.Engine | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._last: frozenset[str] = frozenset()
        self._failing = False

    def _connect(self) -> sa.Engine:
        # A forked child (a Celery prefork worker) must not share its parent's connections.
        if self._engine is None or self._pid != os.getpid():
            with self._lock:
                if self._engine is None or self._pid != os.getpid():
                    options: dict[str, object] = {}
                    if not self._url.startswith("sqlite"):
                        # Web processes search from several threads at once; a database
                        # that does not answer fails within seconds, as the app's own pool.
                        options.update(
                            pool_size=2,
                            max_overflow=6,
                            pool_recycle=3600,
                            connect_args={"connect_timeout": max(1, int(self._connect_timeout_s))},
                        )
                    self._engine = sa.create_engine(self._url, **options)
                    self._pid = os.getpid()
        return self._engine

    def _read(self) -> frozenset[str]:
        with self._connect().connect() as conn:
            return frozenset(str(row[0]) for row in conn.execute(self.QUERY))

    def __call__(self) -> frozenset[str]:
        if self._failing and time.monotonic() - self._failed_at < self.RETRY_S:
            return self._last
        try:
            try:
                ids = self._read()
            except sa.exc.DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                ids = self._read()  # a connection the database closed: the pool is renewed
        except Exception as exc:  # noqa: BLE001 - the database is down: keep the last answer
            if not self._failing:
                log.warning("cannot read the documents switched off (%s); using the last", exc)
            self._failing = True
            self._failed_at = time.monotonic()
            return self._last
        self._failing = False
        self._last = ids
        return ids

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
