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
