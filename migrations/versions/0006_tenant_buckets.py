"""Per-tenant grants of external input buckets (replaces the global allowed-buckets setting).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_buckets",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("bucket", sa.String(63), primary_key=True),
        sa.Column("prefix", sa.String(1024), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tenant_buckets")
