"""a document can be switched off without deleting it (issue 16): staff keep a seasonal
policy or a draft in the knowledge base while customers are not answered from it

Revision ID: 0016_document_enabled
Revises: 0015_staff_curation
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_document_enabled"
down_revision = "0015_staff_curation"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade():
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("enabled")
