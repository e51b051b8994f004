"""A job keeps its plan (so a retry never decodes its file again to re-plan) and the result formats to write to
storage (the others are rendered on request); a segment keeps what its decode found.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("formats", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("plan", sa.JSON(), nullable=True))
    with op.batch_alter_table("job_segments") as batch:
        batch.add_column(sa.Column("warnings", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_segments") as batch:
        batch.drop_column("warnings")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("plan")
        batch.drop_column("formats")
