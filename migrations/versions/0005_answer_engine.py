"""conversation memory: recent questions and answers per customer

Revision ID: 0005_answer_engine
Revises: 0001_initial
Create Date: 2026-11-21 08:10:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0005_answer_engine"
down_revision = "0004_knowledge_lifecycle"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "conversation_turns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer", sa.String(length=160), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("conversation_turns", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_conversation_turns_customer"), ["customer"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_conversation_turns_created_at"), ["created_at"], unique=False
        )


def downgrade():
    with op.batch_alter_table("conversation_turns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversation_turns_created_at"))
        batch_op.drop_index(batch_op.f("ix_conversation_turns_customer"))
    op.drop_table("conversation_turns")
