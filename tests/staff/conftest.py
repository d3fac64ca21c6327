"""The app of the staff APIs' tests: the real app on a PostgreSQL database of its own,
with one staff account; Milvus is not running (indexing is recorded by each test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from app import create_app
from app.accounts import users
from app.extensions import db
from app.settings import load_settings
from tests.conftest import temp_pg_database
from tests.support import free_port

STAFF = ("curator", "staff-pass-123")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    with temp_pg_database() as url:
        settings = load_settings(
            data_dir=tmp_path_factory.mktemp("data"),
            database_url=url,
            milvus_uri=f"http://127.0.0.1:{free_port()}",
        )
        app = create_app(settings)
        with app.app_context():
            db.create_all()
            users.create_user(*STAFF, role="staff", actor="test")
        yield app
        with app.app_context():
            db.engine.dispose()
