"""staff session epoch (logout and disabling end sessions server-side)

Revision ID: 0011_session_epoch
Revises: 0010_wait_notice
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_session_epoch"
down_revision = "0010_wait_notice"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade():
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_epoch")
