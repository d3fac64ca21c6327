"""dify conversations (WeChat questions answered by a Dify app)

Revision ID: 0007_dify_conversations
Revises: 0006_api_keys
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_dify_conversations"
down_revision = "0006_api_keys"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "dify_conversations",
        sa.Column("customer", sa.String(length=160), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer"),
    )


def downgrade():
    op.drop_table("dify_conversations")
