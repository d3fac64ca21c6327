"""Relational store: SQLAlchemy models (schema changes go through migrations/)."""

from app.store.models import (
    AccessToken,
    ApiKey,
    AuditEntry,
    ConversationTurn,
    DifyConversation,
    Document,
    DocumentVersion,
    HandoffRequest,
    InboundMessage,
    OutboundReply,
    RateCounter,
    ReindexRun,
    User,
)

__all__ = [
    "AccessToken",
    "ApiKey",
    "AuditEntry",
    "ConversationTurn",
    "DifyConversation",
    "Document",
    "DocumentVersion",
    "HandoffRequest",
    "InboundMessage",
    "OutboundReply",
    "RateCounter",
    "ReindexRun",
    "User",
]
