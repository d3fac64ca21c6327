"""The audit log: one row per change to the knowledge base or its users, naming who did it."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.store import AuditEntry


def record(actor: str, action: str, target: str = "", **detail: Any) -> AuditEntry:
    """Add an entry to the current transaction (committed with the change it describes)."""
    entry = AuditEntry(
        actor=actor[:64],
        action=action,
        target=target[:255],
        detail=json.dumps(detail, ensure_ascii=False, default=str) if detail else "",
    )
    db.session.add(entry)
    return entry


def entry_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "detail": json.loads(entry.detail) if entry.detail else {},
    }


def recent(limit: int = 100, target: str | None = None) -> list[AuditEntry]:
    """Newest first."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if target:
        query = query.where(AuditEntry.target == target)
    return list(db.session.scalars(query))
