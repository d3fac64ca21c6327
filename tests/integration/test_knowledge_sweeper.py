"""An upload whose indexing task was lost (broker restarted empty, worker killed without
redelivery) is queued again by the beat sweeper, once per period, and never while the
workers are busy with other documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.extensions import db
from app.knowledge import indexing
from app.store import Document, DocumentVersion
from tests.integration.test_wechat_callback import _app


def _upload(doc_id: str, status: str, idle_s: float) -> int:
    at = datetime.now(UTC) - timedelta(seconds=idle_s)
    db.session.add(Document(id=doc_id, source=doc_id, status=status, updated_at=at))
    version = DocumentVersion(
        document_id=doc_id, number=1, filename=doc_id, sha256="0" * 64, status=status
    )
    db.session.add(version)
    db.session.commit()
    # onupdate would stamp "now": set the last progress explicitly.
    db.session.execute(db.update(Document).where(Document.id == doc_id).values(updated_at=at))
    db.session.commit()
    return version.id


def test_lost_indexing_tasks_are_requeued_once_per_period(tmp_path: Path) -> None:
    app = _app(tmp_path, kb_stalled_after_s=600)
    settings = app.extensions["settings"]
    with app.app_context():
        lost = _upload("lost.md", "queued", idle_s=900)
        died = _upload("died.pdf", "processing", idle_s=1200)
        _upload("fresh.md", "queued", idle_s=5)  # just uploaded: its task is on its way
        sent: list[int] = []

        assert indexing.requeue_stalled(settings, sent.append) == [lost, died]
        assert sent == [lost, died]
        assert "re-queued" in db.session.get(Document, "lost.md").stage
        # Touched: the next sweep, a minute later, leaves them to the worker.
        assert indexing.requeue_stalled(settings, sent.append) == []


def test_nothing_is_requeued_while_a_worker_is_making_progress(tmp_path: Path) -> None:
    app = _app(tmp_path, kb_stalled_after_s=600)
    settings = app.extensions["settings"]
    with app.app_context():
        _upload("waiting.md", "queued", idle_s=900)  # behind a long PDF, not lost
        _upload("big.pdf", "processing", idle_s=3)
        sent: list[int] = []
        assert indexing.requeue_stalled(settings, sent.append) == []
        assert sent == []
