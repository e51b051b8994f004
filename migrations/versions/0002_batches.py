"""Batches: groups of jobs from JSONL (OpenAI Batch format) or an S3 prefix.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("source", sa.String(1100), nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("invalid", sa.Integer, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("completed_at", TS),
    )
    op.create_table(
        "batch_items",
        sa.Column("batch_id", sa.String(32), sa.ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("custom_id", sa.String(256), primary_key=True),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id")),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_batch_items_job_id", "batch_items", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_batch_items_job_id", "batch_items")
    op.drop_table("batch_items")
    op.drop_table("batches")
