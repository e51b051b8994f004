"""Corrections as revisions: every edit of a transcript is a new revision (who, when, what changed, the whole
revised result); the machine's output stays on the job as revision 0. A job knows its latest revision and whether
it was approved (then it is locked).

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("approved_by", sa.String(200), nullable=True))
    op.create_table(
        "transcript_revisions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.UniqueConstraint("job_id", "number", name="uq_transcript_revisions_job_number"),
    )


def downgrade() -> None:
    op.drop_table("transcript_revisions")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("approved_by")
        batch.drop_column("approved_at")
        batch.drop_column("revision")
