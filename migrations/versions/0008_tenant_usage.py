"""Per-tenant active-jobs counters (core.jobs.active): the quota check becomes one conditional UPDATE.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_usage",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("active_jobs", sa.Integer(), nullable=False, server_default="0"),
    )
    op.execute(
        "INSERT INTO tenant_usage (tenant, active_jobs) SELECT tenant, count(*) FROM jobs "
        "WHERE state IN ('queued', 'running', 'retrying') GROUP BY tenant"
    )


def downgrade() -> None:
    op.drop_table("tenant_usage")
