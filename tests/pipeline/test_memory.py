"""Conversation memory in PostgreSQL: bounded, expiring, per customer, shared by processes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from app.pipeline.memory import SqlMemory, Turn


def _customer() -> str:
    return f"test:{uuid.uuid4().hex[:10]}"


def test_only_the_last_turns_are_kept(db_engine: sa.Engine) -> None:
    memory, who = SqlMemory(db_engine, turns=2, ttl_s=600), _customer()
    for i in range(5):
        memory.remember(who, f"问题{i}", f"回答{i}")
    assert memory.recent(who) == [Turn("问题3", "回答3"), Turn("问题4", "回答4")]
    with db_engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT count(*) FROM conversation_turns WHERE customer = :c"), {"c": who}
        ).scalar()
    assert stored == 2  # older rows are deleted, not just hidden


def test_turns_expire(db_engine: sa.Engine) -> None:
    memory, who = SqlMemory(db_engine, turns=3, ttl_s=600), _customer()
    memory.remember(who, "满多少包邮？", "满99元包邮。")
    with db_engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE conversation_turns SET created_at = :t WHERE customer = :c"),
            {"t": datetime.now(UTC) - timedelta(seconds=601), "c": who},
        )
    assert memory.recent(who) == []
    assert memory.forget_expired() >= 1


def test_another_process_sees_the_same_memory(db_engine: sa.Engine, pg_url: str) -> None:
    who = _customer()
    SqlMemory(db_engine, turns=3, ttl_s=600).remember(who, "电饭煲保修多久？", "一年。")
    other = sa.create_engine(pg_url)  # a second connection pool, as another worker has
    try:
        assert SqlMemory(other, turns=3, ttl_s=600).recent(who) == [
            Turn("电饭煲保修多久？", "一年。")
        ]
    finally:
        other.dispose()


def test_zero_turns_disables_memory(db_engine: sa.Engine) -> None:
    memory, who = SqlMemory(db_engine, turns=0, ttl_s=600), _customer()
    memory.remember(who, "a", "b")
    assert memory.recent(who) == []
