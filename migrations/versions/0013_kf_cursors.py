"""微信客服 cursors: how far each kf account's messages have been read (kf/sync_msg)

Revision ID: 0013_kf_cursors
Revises: 0012_claimed_by
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_kf_cursors"
down_revision = "0012_claimed_by"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "kf_cursors",
        sa.Column("open_kfid", sa.String(length=64), nullable=False),
        sa.Column("cursor", sa.String(length=128), nullable=False, server_default=""),
        sa.Column("pending", sa.Text(), nullable=False, server_default=""),
        sa.Column("pages", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("open_kfid"),
    )


def downgrade():
    op.drop_table("kf_cursors")
