"""Tables of the staff's curation of the knowledge (issue 16): the FAQ entries staff write
or edit on the pages, and the unanswered questions they have dealt with.

``FaqRecord`` is the source of truth of every FAQ entry made or edited on the pages
(app/faq/editing.py says how they reach the index). ``UnansweredResolution`` remembers a
question of the unanswered list that staff answered (made an FAQ entry of, or attached to
one) or dismissed, so it leaves the list; the same question refused again later comes back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.store.models import utcnow


class FaqRecord(db.Model):
    """One FAQ entry made or edited by staff.

    ``doc_id`` is the document it is indexed with: the staff entries' own document
    (app/faq/editing.py ``STAFF_DOC``), or, for an edit of an entry that came from an
    uploaded spreadsheet, that spreadsheet's document, with ``base_question`` naming the
    entry it replaces there (matched by normalised text when the spreadsheet is indexed).
    ``version`` moves on with every change: an edit names the version it started from and
    is refused (409) when another edit came first.
    """

    __tablename__ = "faq_entries"
    __table_args__ = (Index("ix_faq_entries_doc", "doc_id", "base_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    doc_id: Mapped[str] = mapped_column(String(255))
    base_question: Mapped[str] = mapped_column(Text, default="", server_default="")
    #: normalised ``base_question`` ("" for the staff document's own entries)
    base_key: Mapped[str] = mapped_column(String(255), default="", server_default="")
    question: Mapped[str] = mapped_column(Text)
    #: JSON list of the other ways customers ask it
    paraphrases: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    answer: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(64), default="", server_default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_by: Mapped[str] = mapped_column(String(64), default="", server_default="")
    updated_by: Mapped[str] = mapped_column(String(64), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class UnansweredResolution(db.Model):
    """A question (by its normalised text) staff dealt with: ``action`` is "faq" (an entry
    answers it now: ``faq_id``) or "dismissed". Messages with this text received before
    ``at`` leave the unanswered list."""

    __tablename__ = "unanswered_resolutions"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    question: Mapped[str] = mapped_column(Text, default="")
    action: Mapped[str] = mapped_column(String(16))
    faq_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
