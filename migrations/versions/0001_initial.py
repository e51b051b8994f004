"""Initial schema: uploads, jobs, job events, job segments.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("filename", sa.String(512), nullable=False),
        sa.Column("content_type", sa.String(200)),
        sa.Column("storage_key", sa.String(1024), nullable=False),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("sha256", sa.String(64)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("input_ref", sa.String(1100), nullable=False),
        sa.Column("upload_id", sa.String(32), sa.ForeignKey("uploads.id")),
        sa.Column("content_sha256", sa.String(64)),
        sa.Column("queue", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("oom_retries", sa.Integer, nullable=False),
        sa.Column("segment_seconds", sa.Float),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("failure_class", sa.String(32)),
        sa.Column("failure_reason", sa.Text),
        sa.Column("segments_planned", sa.Integer),
        sa.Column("segments_done", sa.Integer, nullable=False),
        sa.Column("media_seconds", sa.Float),
        sa.Column("engine_seconds", sa.Float, nullable=False),
        sa.Column("worker", sa.String(200)),
        sa.Column("result", sa.JSON),
        sa.Column("outputs", sa.JSON),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("queued_at", TS),
        sa.Column("started_at", TS),
        sa.Column("heartbeat_at", TS),
        sa.Column("finished_at", TS),
    )
    op.create_index("ix_jobs_state_created", "jobs", ["state", "created_at"])
    op.create_index("ix_jobs_task_created", "jobs", ["task", "created_at"])
    op.create_index("ix_jobs_sha", "jobs", ["content_sha256", "task"])
    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("from_state", sa.String(16)),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("worker", sa.String(200)),
    )
    op.create_index("ix_job_events_job_id", "job_events", ["job_id"])
    op.create_table(
        "job_segments",
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("index", sa.Integer, primary_key=True),
        sa.Column("start_s", sa.Float, nullable=False),
        sa.Column("end_s", sa.Float, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("reasoning", sa.Text),
        sa.Column("audio_key", sa.String(1024)),
        sa.Column("engine_seconds", sa.Float, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("job_segments")
    op.drop_index("ix_job_events_job_id", "job_events")
    op.drop_table("job_events")
    op.drop_index("ix_jobs_sha", "jobs")
    op.drop_index("ix_jobs_task_created", "jobs")
    op.drop_index("ix_jobs_state_created", "jobs")
    op.drop_table("jobs")
    op.drop_table("uploads")
