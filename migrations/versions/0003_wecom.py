"""rate_counters: per-customer rate limiting without Redis (issue 3: WeCom, rate limits)

Revision ID: 0003_wecom
Revises: 0001_initial
Create Date: 2026-11-21 12:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0003_wecom"
down_revision = "0002_wechat_delivery"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "rate_counters",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("window_start", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade():
    op.drop_table("rate_counters")
