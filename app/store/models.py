"""Tables of the service. Every customer message is a row before any work starts.

Each kind of status is a ``StrEnum`` next to its table: a member equals the string stored
(``MessageStatus.ANSWERED == "answered"``), so the database, the migrations, the API bodies
and the metrics' labels read exactly as before, and values read back from the database
(plain strings) compare equal to the members.

Past 400 lines because it is the schema: every table in one module, so a reader (and the
migrations test that compares it with migrations/) sees all of it and its history notes
(which migration added each column) in one place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import (
    DDL,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
    func,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC)


class MessageStatus(StrEnum):
    """``InboundMessage.status``: received -> processing -> answered | failed; a message
    that needs no answer from the knowledge is stored answered (a fixed reply), handoff
    (asked for a person) or ignored (admission turned it away). Passive delivery:
    processing -> ready (the answer stored, waiting for a callback to carry it) ->
    answered."""

    RECEIVED = "received"
    PROCESSING = "processing"
    READY = "ready"
    ANSWERED = "answered"
    FAILED = "failed"
    IGNORED = "ignored"
    HANDOFF = "handoff"


#: Questions the workers still owe an answer.
UNANSWERED = (MessageStatus.RECEIVED, MessageStatus.PROCESSING)


class AnswerOutcome(StrEnum):
    """``InboundMessage.outcome``: what the answer was ("" until answered). The answer
    pipeline (app/pipeline/answer.py) writes the first three as plain strings, which
    equal these members."""

    FAQ = "faq"  # an FAQ entry's stored answer, verbatim
    GENERATED = "generated"  # the model, checked
    REFUSED = "refused"  # the hand-off reply: the knowledge does not cover it
    REPLIED = "replied"  # a fixed reply (an event, a picture without text...)
    HANDED_OFF = "handed_off"  # the customer asked for a person
    FAILED = "failed"
    RATE_LIMITED = "rate_limited"  # admission: the customer's rate limit
    BUSY = "busy"  # admission: the backlog is full


class ReplyStatus(StrEnum):
    """``OutboundReply.status``: pending -> sent | failed."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class DocumentStatus(StrEnum):
    """``Document.status`` (queued -> processing -> indexed | failed) and
    ``DocumentVersion.status`` (the same, or superseded by a newer version)."""

    QUEUED = "queued"
    PROCESSING = "processing"
    INDEXED = "indexed"
    FAILED = "failed"
    SUPERSEDED = "superseded"  # versions only


class ReindexStatus(StrEnum):
    """``ReindexRun.status``: running -> succeeded | up_to_date | failed | abandoned (its
    process died)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    UP_TO_DATE = "up_to_date"
    FAILED = "failed"
    ABANDONED = "abandoned"


class HandoffStatus(StrEnum):
    """``HandoffRequest.status``: open -> taken | closed (by the agents' tooling)."""

    OPEN = "open"
    TAKEN = "taken"
    CLOSED = "closed"


class InboundMessage(db.Model):
    """A customer message as WeChat delivered it.

    `dedup_key` is WeChat's MsgId (or FromUserName+CreateTime for events, which carry
    no MsgId); its uniqueness is what makes WeChat's three retries one piece of work.
    """

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("channel", "dedup_key", name="uq_inbound_channel_dedup"),
        # The staff's list pages (migration 0015_staff_curation).
        Index("ix_inbound_created", "created_at"),
        Index("ix_inbound_outcome_created", "outcome", "created_at"),
        Index("ix_inbound_customer_created", "customer", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), default="wechat")
    dedup_key: Mapped[str] = mapped_column(String(128))
    account: Mapped[str] = mapped_column(String(64), default="")
    customer: Mapped[str] = mapped_column(String(128), index=True)
    msg_type: Mapped[str] = mapped_column(String(32))
    content: Mapped[str] = mapped_column(Text, default="")
    #: MessageStatus
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.RECEIVED, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: The process holding the claim, "host/pid/start" (migration 0012_claimed_by): a
    #: worker restarted on that host takes back a dead process's claims at once
    #: (app/messages/claims.py) instead of waiting for the lease to lapse.
    claimed_by: Mapped[str] = mapped_column(String(160), default="", server_default="")
    # --- delivery (migration 0002_wechat_delivery) ---
    #: WeChat's MediaId of an image or an unrecognised voice message, downloaded and read
    #: (OCR, speech) by the worker.
    media_id: Mapped[str] = mapped_column(String(256), default="", server_default="")
    #: The voice media's format as the channel named it (``Format``: amr, speex, silk;
    #: migration 0014_media_format): headerless speex is told only by this.
    media_format: Mapped[str] = mapped_column(String(16), default="", server_default="")
    #: How the answer reaches the customer: custom (customer-service API) or passive (the
    #: reply to one of WeChat's callback requests, for accounts without that API).
    delivery: Mapped[str] = mapped_column(String(16), default="custom", server_default="custom")
    #: WeChat's tries of this message seen by the callback (passive mode holds each).
    callback_tries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The passive reply text given to a try of this message, given again to a retry.
    passive_reply: Mapped[str] = mapped_column(Text, default="", server_default="")
    # --- outcome (migration 0008_answer_outcome) ---
    #: What the answer was (AnswerOutcome); empty until answered.
    outcome: Mapped[str] = mapped_column(String(16), default="", server_default="", index=True)
    #: JSON: how it came about (the entry and its evidence, the check that refused and
    #: why, the sources, timings).
    outcome_detail: Mapped[str] = mapped_column(Text, default="", server_default="")
    # --- backlog (migration 0010_wait_notice) ---
    #: When the customer was told their question waits in a backlog (once).
    wait_notice_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    replies: Mapped[list[OutboundReply]] = relationship(
        back_populates="inbound", order_by="OutboundReply.seq"
    )


class OutboundReply(db.Model):
    """One message sent back to the customer (a long answer is several)."""

    __tablename__ = "outbound_replies"
    __table_args__ = (UniqueConstraint("inbound_id", "seq", name="uq_reply_inbound_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound_messages.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    content: Mapped[str] = mapped_column(Text)
    sources: Mapped[str] = mapped_column(Text, default="")
    #: ReplyStatus
    status: Mapped[str] = mapped_column(String(16), default=ReplyStatus.PENDING)
    errcode: Mapped[int | None] = mapped_column(Integer, nullable=True)
    errmsg: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: custom (customer-service API) or passive (carried by the reply to ``carried_by``).
    via: Mapped[str] = mapped_column(String(16), default="", server_default="")
    carried_by: Mapped[int | None] = mapped_column(Integer, nullable=True)

    inbound: Mapped[InboundMessage] = relationship(back_populates="replies")


#: The staff log's text search (migration 0017_staff_search; PostgreSQL only, SQLite scans):
#: the lower-cased two-character pieces of a text, GIN-indexed on each question and each
#: reply. pg_trgm's trigrams need three characters in a row, and Chinese is searched by
#: two ("退款", "发票"): with trigrams those scanned both tables (bench/RESULTS.md, issue 16).
#: A search asks ``search_bigrams(content) @> search_bigrams(:q)`` and rechecks ILIKE
#: (app/conversations/logs.py). The migration creates the same function.
SEARCH_BIGRAMS = """
CREATE OR REPLACE FUNCTION search_bigrams(t text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT coalesce(array_agg(DISTINCT substr(lower(t), i, 2)), '{}'::text[])
  FROM generate_series(1, length(t) - 1) AS i
$$
"""
event.listen(db.metadata, "before_create", DDL(SEARCH_BIGRAMS).execute_if(dialect="postgresql"))
Index(
    "ix_inbound_content_bigrams",
    func.search_bigrams(InboundMessage.content),
    postgresql_using="gin",
).ddl_if(dialect="postgresql")
Index(
    "ix_reply_content_bigrams",
    func.search_bigrams(OutboundReply.content),
    postgresql_using="gin",
).ddl_if(dialect="postgresql")


class Document(db.Model):
    """A knowledge source file and the state of its index.

    ``version`` is the version readers are served (0: none yet). While a newer version is
    indexed, ``status`` is queued/processing with ``progress`` 0-100 and ``stage`` in words;
    if it fails, ``status`` is failed and the served version stays as it was.
    """

    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    source: Mapped[str] = mapped_column(String(1024))
    title: Mapped[str] = mapped_column(String(512), default="")
    kind: Mapped[str] = mapped_column(String(16), default="text")
    sha256: Mapped[str] = mapped_column(String(64), default="")
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    #: DocumentStatus (queued -> processing -> indexed | failed)
    status: Mapped[str] = mapped_column(String(16), default=DocumentStatus.QUEUED)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    category: Mapped[str] = mapped_column(String(256), default="")
    #: "upload" (API, CLI upload) or "folder" (`flask kb ingest` of KNOWLEDGE_DIR)
    origin: Mapped[str] = mapped_column(String(16), default="upload")
    version: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    stage: Mapped[str] = mapped_column(String(128), default="")
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    #: False: kept and listed, but nothing of it is searched or answered from (issue 16)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    updated_by: Mapped[str] = mapped_column(String(64), default="")


class AccessToken(db.Model):
    """The one WeChat access token every process shares (refreshing clobbers the old one)."""

    __tablename__ = "access_tokens"

    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[str] = mapped_column(String(1024), default="")
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    refreshed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: The last forced refresh, and how many this (Beijing) day: WeChat allows 20 a day, at
    #: least 30 s apart (app/channels/wechat/tokens.py).
    forced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    forced_today: Mapped[int] = mapped_column(Integer, default=0)


class RateCounter(db.Model):
    """A customer's message count in the current rate-limit window, when there is no Redis.

    One row per key (channel:customer), reset in place when a new window starts, so the
    table stays as small as the customer list and needs no cleaning.
    """

    __tablename__ = "rate_counters"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[int] = mapped_column(Integer)  # epoch seconds
    count: Mapped[int] = mapped_column(Integer)


class DocumentVersion(db.Model):
    """One uploaded file of a document. The bytes live here, so that any worker can index
    them and a reindex can rebuild every document without the uploader's folder; the
    content of superseded versions is dropped once a newer one serves."""

    __tablename__ = "document_versions"
    __table_args__ = (UniqueConstraint("document_id", "number", name="uq_version_doc_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    content: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    #: DocumentStatus (queued -> processing -> indexed | failed | superseded)
    status: Mapped[str] = mapped_column(String(16), default=DocumentStatus.QUEUED)
    error: Mapped[str] = mapped_column(Text, default="")
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    indexed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEntry(db.Model):
    """Who changed what in the knowledge base (and in its users), kept after the document."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(255), default="", index=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class User(db.Model):
    """A staff member who may sign in to the knowledge API and admin pages."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # staff: manage documents and search; admin: also reindex, audit log, users
    role: Mapped[str] = mapped_column(String(16), default="staff")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: Sessions carry the epoch they began in; logging out, a new password or disabling
    #: the account moves it on, ending every session of the account (migration 0011).
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ReindexRun(db.Model):
    """One blue/green rebuild of the knowledge collection, with its progress."""

    __tablename__ = "reindex_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: ReindexStatus
    status: Mapped[str] = mapped_column(String(16), default=ReindexStatus.RUNNING)
    trigger: Mapped[str] = mapped_column(String(16), default="cli")
    actor: Mapped[str] = mapped_column(String(64), default="")
    full: Mapped[bool] = mapped_column(Boolean, default=False)
    collection: Mapped[str] = mapped_column(String(255), default="")
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    reused: Mapped[int] = mapped_column(Integer, default=0)
    rebuilt: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApiKey(db.Model):
    """A bearer key for the tool API, /dify/retrieval and /v1 (Dify's credentials).

    Only the SHA-256 of the key is stored: keys are 256-bit random strings, so a fast hash
    is enough (no password stretching needed) and lookup is one indexed equality.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    #: The first characters of the key, shown in listings so admins can tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class HandoffRequest(db.Model):
    """A conversation handed to a person through the hand-off tool (Dify workflows)."""

    __tablename__ = "handoff_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(32), default="dify")
    customer: Mapped[str] = mapped_column(String(128), default="")
    conversation_id: Mapped[str] = mapped_column(String(128), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    #: HandoffStatus
    status: Mapped[str] = mapped_column(String(16), default=HandoffStatus.OPEN, index=True)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # --- the hand-off inbox (migration 0015_staff_curation) ---
    taken_by: Mapped[str] = mapped_column(String(64), default="", server_default="")
    taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closed_by: Mapped[str] = mapped_column(String(64), default="", server_default="")
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ConversationTurn(db.Model):
    """One question and the answer it got: a customer's short-term memory, so follow-up
    questions ("那空气炸锅呢？") are understood. Read back only while recent; old rows are
    deleted as new ones arrive. Stored masked (no phone, card or ID numbers)."""

    __tablename__ = "conversation_turns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer: Mapped[str] = mapped_column(String(160), index=True)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )


class DifyConversation(db.Model):
    """The Dify conversation a customer is in when a Dify app answers (ANSWER_BACKEND=dify),
    so the app's own memory sees their follow-up questions."""

    __tablename__ = "dify_conversations"

    customer: Mapped[str] = mapped_column(String(160), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class KfCursor(db.Model):
    """How far the messages of one 微信客服 account (open_kfid) have been read with
    kf/sync_msg, so that no message is read twice or skipped (app/channels/kf/cursor.py).

    A page's cursor is stored together with that page's messages still to be taken in
    (``pending``), in one commit, before they are taken in: a reader killed meanwhile
    leaves them here for the next reader, which takes them in (deduplicated by msgid)
    before it asks for more."""

    __tablename__ = "kf_cursors"

    open_kfid: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: sync_msg's next_cursor (WeChat: at most 64 bytes); "" before the first page.
    cursor: Mapped[str] = mapped_column(String(128), default="", server_default="")
    #: JSON list: the last page's messages to take in; "" when none are left.
    pending: Mapped[str] = mapped_column(Text, default="", server_default="")
    #: Pages read so far (all readers together).
    pages: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class QuestionVector(db.Model):
    """A customer question's embedding (migration 0017_staff_search), kept so the grouping
    of unanswered questions (app/conversations/unanswered.py) embeds nothing it has seen:
    written by the worker that answered it (the vector its search had just made) or by the
    page for a question no worker embedded (a hand-off taken at intake), read by the page.
    ``key``: sha256 of the question's normalised text (``app.faq.editing.key_of``);
    ``vector``: ``dim`` little-endian float32, unit length."""

    __tablename__ = "question_vectors"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
