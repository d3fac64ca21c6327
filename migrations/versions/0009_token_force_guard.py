"""forced token refreshes counted (WeChat allows 20 a day, 30 s apart)

Revision ID: 0009_token_force_guard
Revises: 0008_answer_outcome
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_token_force_guard"
down_revision = "0008_answer_outcome"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("access_tokens") as batch:
        batch.add_column(sa.Column("forced_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("forced_today", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade():
    with op.batch_alter_table("access_tokens") as batch:
        batch.drop_column("forced_today")
        batch.drop_column("forced_at")
