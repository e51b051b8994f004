"""Signing secrets are stored encrypted (wider columns; plaintext rows are still read and are encrypted by
`omnimedia secrets rotate`); a segment keeps its prompt's token count and why its answer ended.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SECRET_TABLES = ("webhook_endpoints", "tenant_webhook_secrets")


def upgrade() -> None:
    for table in SECRET_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("secret", type_=sa.String(512), existing_nullable=False)
            batch.alter_column("previous_secret", type_=sa.String(512), existing_nullable=True)
    with op.batch_alter_table("job_segments") as batch:
        batch.add_column(sa.Column("prompt_tokens", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("finish", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_segments") as batch:
        batch.drop_column("finish")
        batch.drop_column("prompt_tokens")
    for table in SECRET_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("secret", type_=sa.String(100), existing_nullable=False)
            batch.alter_column("previous_secret", type_=sa.String(100), existing_nullable=True)
