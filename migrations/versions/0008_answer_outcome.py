"""answer outcome (what each answer was, and why)

Revision ID: 0008_answer_outcome
Revises: 0007_dify_conversations
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_answer_outcome"
down_revision = "0007_dify_conversations"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(
            sa.Column("outcome", sa.String(length=16), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("outcome_detail", sa.Text(), nullable=False, server_default=""))
        batch.create_index("ix_inbound_messages_outcome", ["outcome"])


def downgrade():
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_index("ix_inbound_messages_outcome")
        batch.drop_column("outcome_detail")
        batch.drop_column("outcome")
