"""A segment keeps its words with their times, where those times come from, and its generated token count.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_segments") as batch:
        batch.add_column(sa.Column("words", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("timing", sa.String(16), nullable=True))
        batch.add_column(sa.Column("tokens", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("job_segments") as batch:
        batch.drop_column("tokens")
        batch.drop_column("timing")
        batch.drop_column("words")
