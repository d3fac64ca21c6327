"""The migrations build exactly the schema the models describe: a model change without
its migration would fail in production at the first query, not here."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import app.store  # noqa: F401 - the models register their tables
from app.extensions import db
from tests.conftest import temp_pg_database
from tests.support import base_env, run_flask


def test_migrating_an_empty_database_gives_the_models_schema(tmp_path) -> None:  # noqa: ANN001
    with temp_pg_database() as url:
        done = run_flask(["db", "upgrade"], base_env(tmp_path, DATABASE_URL=url))
        assert done.returncode == 0, done.stdout + done.stderr
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        finally:
            engine.dispose()
    assert diff == []


def _search_objects(conn: sa.Connection) -> tuple[set[str], bool, bool]:
    indexes = set(
        conn.execute(
            sa.text("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%content_bigrams'")
        ).scalars()
    )
    function = conn.execute(
        sa.text("SELECT count(*) FROM pg_proc WHERE proname = 'search_bigrams'")
    ).scalar()
    return indexes, bool(function), sa.inspect(conn).has_table("question_vectors")


def test_0017_up_down_and_up_again_on_postgresql(tmp_path) -> None:  # noqa: ANN001
    """The log's search indexes, their function and the question vectors' table come with
    0017 and go with its downgrade; a search on the migrated database uses the index."""
    with temp_pg_database() as url:
        env = base_env(tmp_path, DATABASE_URL=url)
        for args in (["db", "upgrade"], ["db", "downgrade", "0016_document_enabled"]):
            done = run_flask(args, env)
            assert done.returncode == 0, done.stdout + done.stderr
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                assert _search_objects(conn) == (set(), False, False)
            done = run_flask(["db", "upgrade"], env)
            assert done.returncode == 0, done.stdout + done.stderr
            with engine.connect() as conn:
                assert _search_objects(conn) == (
                    {"ix_inbound_content_bigrams", "ix_reply_content_bigrams"},
                    True,
                    True,
                )
                assert conn.execute(sa.text("SELECT search_bigrams('退款A')")).scalar() == [
                    "款a",
                    "退款",
                ]
                conn.execute(sa.text("SET enable_seqscan = off"))
                plan = "\n".join(
                    conn.execute(
                        sa.text(
                            "EXPLAIN SELECT id FROM inbound_messages WHERE "
                            "search_bigrams(content) @> search_bigrams('退款')"
                        )
                    ).scalars()
                )
                assert "ix_inbound_content_bigrams" in plan
        finally:
            engine.dispose()


def test_0017_on_sqlite_makes_the_table_and_no_search_index(tmp_path) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'app.db'}"
    env = base_env(tmp_path, DATABASE_URL=url)
    done = run_flask(["db", "upgrade"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        assert inspector.has_table("question_vectors")
        names = {i["name"] for i in inspector.get_indexes("inbound_messages")}
        assert "ix_inbound_content_bigrams" not in names
    finally:
        engine.dispose()
    done = run_flask(["db", "downgrade", "0016_document_enabled"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    engine = sa.create_engine(url)
    try:
        assert not sa.inspect(engine).has_table("question_vectors")
    finally:
        engine.dispose()
