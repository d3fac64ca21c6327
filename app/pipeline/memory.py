"""Per-customer conversation memory: the last few turns, for follow-up questions.

Kept in the database so every worker process (and every thread) sees the same memory,
whichever one answers the next message. Bounded in two ways: only the last ``turns``
turns younger than ``ttl_s`` are read, and older rows of the customer are deleted when a
new turn is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.store import ConversationTurn


@dataclass(frozen=True)
class Turn:
    question: str
    answer: str


class Memory(Protocol):
    def recent(self, customer: str) -> list[Turn]: ...

    def remember(self, customer: str, question: str, answer: str) -> None: ...


class SqlMemory:
    """Memory in the ``conversation_turns`` table, on its own short sessions so that it
    never commits or rolls back the caller's transaction."""

    def __init__(self, engine: sa.Engine, *, turns: int, ttl_s: int) -> None:
        self.engine = engine
        self.turns = turns
        self.ttl_s = ttl_s

    def _cutoff(self) -> datetime:
        return datetime.now(UTC) - timedelta(seconds=self.ttl_s)

    def recent(self, customer: str) -> list[Turn]:
        """The customer's last turns, oldest first; empty once they have expired."""
        if self.turns <= 0:
            return []
        with Session(self.engine) as session:
            rows = session.scalars(
                sa.select(ConversationTurn)
                .where(
                    ConversationTurn.customer == customer,
                    ConversationTurn.created_at >= self._cutoff(),
                )
                .order_by(ConversationTurn.id.desc())
                .limit(self.turns)
            ).all()
            return [Turn(r.question, r.answer) for r in reversed(rows)]

    def remember(self, customer: str, question: str, answer: str) -> None:
        if self.turns <= 0:
            return
        with Session(self.engine) as session, session.begin():
            session.add(ConversationTurn(customer=customer, question=question, answer=answer))
            session.flush()
            keep = (
                sa.select(ConversationTurn.id)
                .where(ConversationTurn.customer == customer)
                .order_by(ConversationTurn.id.desc())
                .limit(self.turns)
            )
            session.execute(
                sa.delete(ConversationTurn).where(
                    ConversationTurn.customer == customer,
                    sa.or_(
                        ConversationTurn.created_at < self._cutoff(),
                        ConversationTurn.id.not_in(keep.scalar_subquery()),
                    ),
                )
            )

    def forget_expired(self) -> int:
        """Deletes every expired turn (all customers); returns how many went."""
        with Session(self.engine) as session, session.begin():
            result = session.execute(
                sa.delete(ConversationTurn).where(ConversationTurn.created_at < self._cutoff())
            )
            return int(result.rowcount or 0)
