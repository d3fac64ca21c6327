"""the customer told once that their question waits in a backlog

Revision ID: 0010_wait_notice
Revises: 0009_token_force_guard
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_wait_notice"
down_revision = "0009_token_force_guard"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(sa.Column("wait_notice_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_column("wait_notice_at")
