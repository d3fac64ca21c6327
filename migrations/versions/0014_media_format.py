"""the format a voice message's media was sent in (amr, speex, silk), for its transcription

Revision ID: 0014_media_format
Revises: 0013_kf_cursors
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_media_format"
down_revision = "0013_kf_cursors"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(
            sa.Column("media_format", sa.String(16), nullable=False, server_default="")
        )


def downgrade():
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_column("media_format")
