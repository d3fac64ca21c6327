"""Reading stored rows by filter: counts, a document's chunk ids and file hashes, the FAQ
rows with their vectors, a document's rows for copying into another build.

Separate from search (app/knowledge/search.py) because these read rows as they are stored,
by exact filters, for ingestion, reindexing and the FAQ table; nothing here ranks anything.
"""

from __future__ import annotations

from typing import Any

from pymilvus import MilvusClient

from app.knowledge.chunking import FAQ, FAQ_QUESTION
from app.knowledge.schema import (
    _OUTPUT_FIELDS,
    _QUERY_PAGE,
    ENTRY_FIELDS,
    HiddenDocuments,
    _any_of,
    both,
    not_hidden,
    quote,
)


class RowReads:
    """Filtered queries over the collection (a part of `KnowledgeStore`)."""

    #: Set by the other parts of the store (see `KnowledgeStore.__init__`).
    request_timeout: int
    hidden_documents: HiddenDocuments | None

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

    def chunk_page(self, doc_id: str, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """A document's passages and FAQ entries in reading order (its questions' own rows
        left out), ``limit`` from ``offset``, and how many there are: the staff's preview,
        whether the document is switched on or off. Milvus cannot order a query, so the
        page's ids come from a light read of every chunk's position, then its text."""
        expr = f"doc_id == {quote(doc_id)} and kind != {quote(FAQ_QUESTION)}"
        # A chunk rewritten in place has a row per write until the old one is deleted.
        positions = {
            str(r["chunk_id"]): int(r.get("position", 0) or 0)
            for r in self._query_all(expr, ["chunk_id", "position"])
        }
        order = sorted(positions, key=lambda chunk_id: (positions[chunk_id], chunk_id))
        wanted = order[offset : offset + limit]
        if not wanted:
            return len(order), []
        rows = self._query_all(both(expr, _any_of("chunk_id", wanted)), _OUTPUT_FIELDS)
        by_id = {str(r["chunk_id"]): r for r in rows}
        return len(order), [by_id[c] for c in wanted if c in by_id]

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

    def faq_rows(self, filter_expr: str = "", limit: int = _QUERY_PAGE) -> list[dict[str, Any]]:
        """FAQ entry and question rows with their vectors (the web processes' FAQ table),
        those of documents switched off left out: the table is read again when a document
        changes (app/faq/table.py ``POLL_S``), so a switch reaches verbatim answers too."""
        kinds = _any_of("kind", [FAQ, FAQ_QUESTION])
        expr = both(filter_expr, kinds, not_hidden(self.hidden_documents))
        return self._run(
            lambda client, name: list(
                client.query(
                    name,
                    filter=expr,
                    output_fields=ENTRY_FIELDS,
                    limit=limit,
                    timeout=self.request_timeout,
                    # An entry staff just wrote is in the table read its change set off.
                    consistency_level="Strong",
                )
            )
        )

    def export_rows(self, doc_id: str) -> list[dict[str, Any]]:
        """Every stored field of a document's chunks, vectors included (BM25's sparse vector
        excepted: Milvus derives it from the terms on insert)."""
        fields = ["id", "doc_sha256", "dense", "terms", *_OUTPUT_FIELDS]
        rows = self._query_all(f"doc_id == {quote(doc_id)}", fields)
        return [{k: v for k, v in row.items() if k in fields} for row in rows]
