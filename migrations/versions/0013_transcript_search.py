"""Search across a tenant's transcripts: one row per transcript segment, indexed in the job's final transaction.
Postgres: a tsvector in the job's language configuration with a GIN index (websearch_to_tsquery); SQLite (the
embedded default): an FTS5 table.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE transcript_search USING fts5(text, tenant UNINDEXED, job_id UNINDEXED, "
            "segment UNINDEXED, start_s UNINDEXED, end_s UNINDEXED, speaker UNINDEXED, tokenize='unicode61')"
        )
        return
    op.create_table(
        "transcript_search",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("segment", sa.Integer(), nullable=False),
        sa.Column("start_s", sa.Float(), nullable=False),
        sa.Column("end_s", sa.Float(), nullable=False),
        sa.Column("speaker", sa.String(64), nullable=True),
        sa.Column("config", postgresql.REGCONFIG(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("tsv", postgresql.TSVECTOR(), sa.Computed("to_tsvector(config, text)", persisted=True)),
    )
    op.create_index("ix_transcript_search_tsv", "transcript_search", ["tsv"], postgresql_using="gin")
    op.create_index("ix_transcript_search_tenant_job", "transcript_search", ["tenant", "job_id"])


def downgrade() -> None:
    op.drop_table("transcript_search")
