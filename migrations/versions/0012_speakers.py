"""Speakers: a segment keeps its speaker evidence (windows and embeddings) until the whole file is clustered; a
tenant's enrolled voices (a name and a clip; the embedding is made by a worker on first use and kept).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_segments") as batch:
        batch.add_column(sa.Column("voices", sa.JSON(), nullable=True))
    op.create_table(
        "speakers",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("upload_id", sa.String(32), nullable=False),
        sa.Column("embedding", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant", "name", name="uq_speakers_tenant_name"),
    )


def downgrade() -> None:
    op.drop_table("speakers")
    with op.batch_alter_table("job_segments") as batch:
        batch.drop_column("voices")
