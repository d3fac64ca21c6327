"""large logs stay usable (issue 16): the staff log's text search by index, and the
unanswered questions' vectors kept

- ``search_bigrams(text)``: the lower-cased two-character pieces of a text, and a GIN index
  of them on ``inbound_messages.content`` and ``outbound_replies.content``; a search asks
  ``search_bigrams(content) @> search_bigrams(:q)`` and rechecks ILIKE
  (app/conversations/logs.py). Not pg_trgm: its trigrams need three characters in a row,
  and a two-character Chinese search ("退款") then scanned both tables at 100,000
  messages (bench/RESULTS.md). PostgreSQL only: on SQLite the search scans, as before.
- ``question_vectors``: a question's embedding by (hash of its normalised text, model),
  so /api/unanswered does not embed thousands of wordings after a restart.

Building the two indexes reads both tables (about 3 s at 100,000 messages, writes to them
wait meanwhile).

Revision ID: 0017_staff_search
Revises: 0016_document_enabled
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_staff_search"
down_revision = "0016_document_enabled"
branch_labels = None
depends_on = None

# The same function as app/store/models.py's SEARCH_BIGRAMS (a migration keeps its own copy).
BIGRAMS = """
CREATE OR REPLACE FUNCTION search_bigrams(t text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT coalesce(array_agg(DISTINCT substr(lower(t), i, 2)), '{}'::text[])
  FROM generate_series(1, length(t) - 1) AS i
$$
"""
INDEXES = (
    ("ix_inbound_content_bigrams", "inbound_messages"),
    ("ix_reply_content_bigrams", "outbound_replies"),
)


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade():
    op.create_table(
        "question_vectors",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    if not _postgresql():
        return
    op.execute(BIGRAMS)
    for name, table in INDEXES:
        op.execute(f"CREATE INDEX {name} ON {table} USING gin (search_bigrams(content))")


def downgrade():
    if _postgresql():
        for name, _table in INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
        op.execute("DROP FUNCTION IF EXISTS search_bigrams(text)")
    op.drop_table("question_vectors")
