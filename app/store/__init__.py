"""Relational store: SQLAlchemy models (schema changes go through migrations/)."""

from app.store.models import AccessToken, Document, InboundMessage, OutboundReply

__all__ = ["AccessToken", "Document", "InboundMessage", "OutboundReply"]
