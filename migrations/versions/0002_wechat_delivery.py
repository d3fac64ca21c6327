"""WeChat delivery: image media ids, passive replies, how each reply went out

Revision ID: 0002_wechat_delivery
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_wechat_delivery"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("media_id", sa.String(length=256), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("delivery", sa.String(length=16), nullable=False, server_default="custom")
        )
        batch_op.add_column(
            sa.Column("callback_tries", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("passive_reply", sa.Text(), nullable=False, server_default="")
        )
    with op.batch_alter_table("outbound_replies", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("via", sa.String(length=16), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("carried_by", sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table("outbound_replies", schema=None) as batch_op:
        batch_op.drop_column("carried_by")
        batch_op.drop_column("via")
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_column("passive_reply")
        batch_op.drop_column("callback_tries")
        batch_op.drop_column("delivery")
        batch_op.drop_column("media_id")
