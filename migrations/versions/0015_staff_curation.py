"""staff curation (issue 16): FAQ entries made or edited on the pages, the unanswered
questions dealt with, who took and closed a hand-off, and the indexes the list pages need

Revision ID: 0015_staff_curation
Revises: 0014_media_format
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_staff_curation"
down_revision = "0014_media_format"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "faq_entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("doc_id", sa.String(255), nullable=False),
        sa.Column("base_question", sa.Text(), nullable=False, server_default=""),
        sa.Column("base_key", sa.String(255), nullable=False, server_default=""),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("paraphrases", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("category", sa.String(64), nullable=False, server_default=""),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("created_by", sa.String(64), nullable=False, server_default=""),
        sa.Column("updated_by", sa.String(64), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_faq_entries_doc", "faq_entries", ["doc_id", "base_key"])
    op.create_table(
        "unanswered_resolutions",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("question", sa.Text(), nullable=False, server_default=""),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("faq_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(64), nullable=False, server_default=""),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("handoff_requests") as batch:
        batch.add_column(sa.Column("taken_by", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("closed_by", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
    # The list pages: newest first, by outcome (unanswered: refused and handed off), by
    # customer (one thread).
    op.create_index("ix_inbound_created", "inbound_messages", ["created_at"])
    op.create_index("ix_inbound_outcome_created", "inbound_messages", ["outcome", "created_at"])
    op.create_index("ix_inbound_customer_created", "inbound_messages", ["customer", "created_at"])


def downgrade():
    op.drop_index("ix_inbound_customer_created", "inbound_messages")
    op.drop_index("ix_inbound_outcome_created", "inbound_messages")
    op.drop_index("ix_inbound_created", "inbound_messages")
    with op.batch_alter_table("handoff_requests") as batch:
        batch.drop_column("closed_at")
        batch.drop_column("closed_by")
        batch.drop_column("taken_at")
        batch.drop_column("taken_by")
    op.drop_table("unanswered_resolutions")
    op.drop_index("ix_faq_entries_doc", "faq_entries")
    op.drop_table("faq_entries")
