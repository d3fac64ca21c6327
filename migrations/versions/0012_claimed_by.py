"""who holds a message's claim (a restarted worker takes back a dead one's at once)

Revision ID: 0012_claimed_by
Revises: 0011_session_epoch
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_claimed_by"
down_revision = "0011_session_epoch"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(
            sa.Column("claimed_by", sa.String(160), nullable=False, server_default="")
        )


def downgrade():
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_column("claimed_by")
