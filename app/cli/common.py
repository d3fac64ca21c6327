"""What the `flask` command modules share: the app's settings, the name an audit entry
records, the knowledge store, and the errors a kb command reports without a traceback."""

from __future__ import annotations

from flask import current_app

from app.settings import Settings


def app_settings() -> Settings:
    return current_app.extensions["settings"]


def actor_name(name: str | None) -> str:
    import getpass

    return name or f"cli:{getpass.getuser()}"


def knowledge_store():  # noqa: ANN201 - KnowledgeStore
    from app import resources

    return resources.knowledge_store(app_settings())


def kb_errors():  # noqa: ANN201 - the exceptions a kb command reports without a traceback
    from app.knowledge.documents import Conflict, NotFound
    from app.knowledge.reindex import ReindexBusy
    from app.knowledge.sources import BadFile
    from app.knowledge.store import KnowledgeStoreError

    return (BadFile, KnowledgeStoreError, Conflict, NotFound, ReindexBusy, NotADirectoryError)
