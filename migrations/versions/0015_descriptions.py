"""Audio description: a segment keeps the description cues it found in its pauses (start, end, text).

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_segments") as batch:
        batch.add_column(sa.Column("descriptions", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_segments") as batch:
        batch.drop_column("descriptions")
