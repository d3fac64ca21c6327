"""Documents switched off and on (app/knowledge/enabling.py): the store's searches and FAQ
rows leave them out, the preview still reads their chunks, the answer pipeline and the FAQ
table of a real app follow the documents table, and a reindex keeps the switch. Real parts:
the default embedder, milvus-lite, PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from app.faq.table import FaqTable
from app.knowledge import lookup
from app.knowledge.chunking import chunk_document
from app.knowledge.enabling import DisabledDocuments
from app.knowledge.schema import not_hidden
from app.knowledge.sources import load_document
from app.knowledge.store import KnowledgeStore
from app.store import Document
from tests.conftest import PG_ADMIN, temp_pg_database
from tests.knowledge.conftest import FAQ_ROWS
from tests.support import indexed_app, run_flask, wait_until

MODES = ("hybrid", "dense", "bm25")


@pytest.fixture()
def filled(store: KnowledgeStore, kb_dir: Path) -> tuple[KnowledgeStore, set[str]]:
    """The store with faq.csv and policy.md, and the set of documents it hides (empty)."""
    for name in ("faq.csv", "policy.md"):
        store.upsert_chunks(chunk_document(load_document(kb_dir / name, kb_dir)))
    hidden: set[str] = set()
    store.hidden_documents = lambda: hidden
    return store, hidden


def test_no_document_off_adds_no_filter() -> None:
    assert not_hidden(None) == "" and not_hidden(set) == ""
    assert not_hidden(lambda: {'a"b.md', "c.md"}) == 'doc_id not in ["a\\"b.md", "c.md"]'


def test_a_hidden_document_is_found_by_no_search_and_comes_back_at_once(
    filled: tuple[KnowledgeStore, set[str]],
) -> None:
    store, hidden = filled
    query = "小家电保修多久 退货运费"
    for mode in MODES:
        assert "policy.md" in {h.doc_id for h in store.search(query, 10, mode=mode)}, mode

    hidden.add("policy.md")
    for mode in MODES:
        hits = store.search(query, 10, mode=mode)
        assert hits and {h.doc_id for h in hits} == {"faq.csv"}, mode
        assert store.search(query, 10, mode=mode, doc_id="policy.md") == []
    # Its chunks are still there: the preview reads them, a reindex copies them.
    assert store.count(doc_id="policy.md") > 0 and store.has_rows(doc_id="policy.md")

    hidden.discard("policy.md")
    assert "policy.md" in {h.doc_id for h in store.search(query, 10)}


def test_the_faq_rows_of_a_hidden_spreadsheet_are_not_read(
    filled: tuple[KnowledgeStore, set[str]],
) -> None:
    store, hidden = filled
    assert len(FaqTable.from_rows(store.faq_rows())) == len(FAQ_ROWS)
    hidden.add("faq.csv")
    assert store.faq_rows() == [] and len(FaqTable.from_rows(store.faq_rows())) == 0
    assert all(h.doc_id == "policy.md" for h in store.search("退款多久到账？", 5))
    hidden.clear()
    assert len(FaqTable.from_rows(store.faq_rows())) == len(FAQ_ROWS)


def test_preview_pages_through_a_documents_chunks_in_reading_order(
    filled: tuple[KnowledgeStore, set[str]], kb_dir: Path
) -> None:
    store, hidden = filled
    hidden.add("policy.md")  # switched off: still previewed
    policy = chunk_document(load_document(kb_dir / "policy.md", kb_dir))
    total, first = lookup.chunk_page(store, "policy.md", offset=0, limit=2)
    assert total == len(policy) >= 3
    _, rest = lookup.chunk_page(store, "policy.md", offset=2, limit=100)
    assert [c["position"] for c in first + rest] == list(range(len(policy)))
    assert [c["text"] for c in first + rest] == [c.text for c in policy]
    assert first[0]["chars"] == len(policy[0].text) and first[0]["kind"] == "text"
    assert lookup.chunk_page(store, "policy.md", offset=total, limit=5) == (total, [])

    # A spreadsheet: one chunk per entry (its questions' own rows are not shown).
    total, entries = lookup.chunk_page(store, "faq.csv", offset=0, limit=100)
    assert total == len(entries) == len(FAQ_ROWS)
    assert {e["kind"] for e in entries} == {"faq"}
    assert [e["question"] for e in entries] == [row[0] for row in FAQ_ROWS]
    assert entries[0]["similar_questions"] == FAQ_ROWS[0][2].split("|")
    assert lookup.chunk_page(store, "no/such.md") == (0, [])


def test_the_switched_off_documents_are_read_from_the_database_and_kept_in_an_outage() -> None:
    with temp_pg_database() as url:
        engine = sa.create_engine(url)
        Document.__table__.create(engine)
        with engine.begin() as conn:
            for doc_id in ("a.md", "b.md"):
                conn.execute(sa.insert(Document.__table__).values(id=doc_id, source=doc_id))
        hidden = DisabledDocuments(url)
        assert hidden() == frozenset()
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE documents SET enabled = false WHERE id = 'b.md'"))
        assert hidden() == {"b.md"}  # no cache: the next search sees it
        engine.dispose()
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        assert hidden() == {"b.md"}  # the database is gone: the last answer, not none
        assert hidden() == {"b.md"}  # and again, without waiting on it meanwhile
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # back (and for temp_pg_database to drop)
        engine = sa.create_engine(url)
        Document.__table__.create(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(Document.__table__).values(id="c.md", source="c.md"))
            conn.execute(sa.text("UPDATE documents SET enabled = false"))
        engine.dispose()
        # Read again once the database answers (tried every RETRY_S meanwhile).
        wait_until(lambda: hidden() == {"c.md"}, 30, "the switched-off documents read again")
        hidden.close()


@pytest.fixture()
def app_on_pg(
    tmp_path: Path, kb_dir: Path, milvus_uri: str
) -> Iterator[tuple[dict[str, str], object]]:
    with temp_pg_database() as url:
        yield indexed_app(tmp_path / "data", url, milvus_uri, kb_dir)


@pytest.mark.slow
def test_the_answer_pipeline_and_the_faq_table_follow_the_switch_and_a_reindex_keeps_it(
    app_on_pg: tuple[dict[str, str], object],
) -> None:
    from app import resources
    from app.accounts import audit
    from app.extensions import db
    from app.faq import publishing
    from app.knowledge import enabling

    env, app = app_on_pg
    settings = app.extensions["settings"]  # type: ignore[attr-defined]
    question = "退款多久到账？"
    with app.app_context():  # type: ignore[attr-defined]
        pipeline = resources.answer_pipeline(settings, with_memory=False)
        matcher = resources.faq_matcher(settings)

        def verbatim() -> bool:
            best = matcher.best(question)
            return best is not None and best.verdict == "verbatim"

        def found(doc_id: str) -> bool:
            return doc_id in {h.doc_id for h in pipeline.retriever.search(question, top_k=10)}

        assert verbatim() and found("faq.csv")
        _doc, changed = enabling.set_enabled("faq.csv", False, actor="alice")
        assert changed
        assert not found("faq.csv")  # at once
        wait_until(lambda: not verbatim(), 30, "the FAQ table without faq.csv")
        assert enabling.set_enabled("faq.csv", False, actor="alice")[1] is False
        # The FAQ page lists its entries as switched off, not as answering.
        listed = [e for e in publishing.spreadsheet_entries() if e["doc_id"] == "faq.csv"]
        assert listed and not any(e["enabled"] for e in listed)
        db.session.remove()

    done = run_flask(["kb", "reindex", "--full"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    with app.app_context():  # type: ignore[attr-defined]
        assert db.session.get(Document, "faq.csv").enabled is False
        assert not found("faq.csv")
        enabling.set_enabled("faq.csv", True, actor="bob")
        assert found("faq.csv")  # at once, from the rebuilt collection
        wait_until(verbatim, 30, "the FAQ table with faq.csv again")
        entries = audit.recent(10, target="faq.csv")
        switches = [(e.actor, e.action) for e in entries if e.action in ("enable", "disable")]
        assert switches == [("bob", "enable"), ("alice", "disable")]  # newest first
