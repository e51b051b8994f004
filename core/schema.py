"""Database schema (SQLAlchemy 2). Alembic migrations in migrations/ create exactly these tables; the states they
store are the enums of core.states."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.sealed import SealedString
from core.states import DeliveryState, FailureClass, JobState, UploadState


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone-aware columns; they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def stored(kind: type[enum.StrEnum], length: int = 16) -> Enum:
    """A column of one of core.states' enums: Python sees members, the database keeps their string values in a plain
    VARCHAR of the same length as before (no native enum type, no migration)."""
    return Enum(
        kind,
        native_enum=False,
        length=length,
        validate_strings=True,
        values_callable=lambda members: [member.value for member in members],
    )


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


LOCAL_TENANT = "local"


class ApiKey(Base):
    """An API key: only the sha256 of its secret is stored; the plaintext is shown once at creation."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()


class Upload(Base):
    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant: Mapped[str] = mapped_column(String(64), default=LOCAL_TENANT, index=True)
    filename: Mapped[str] = mapped_column(String(512))
    content_type: Mapped[str | None] = mapped_column(String(200))
    storage_key: Mapped[str] = mapped_column(String(1024))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[UploadState] = mapped_column(stored(UploadState), default=UploadState.READY)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Speaker(Base):
    """A voice a tenant enrolled (a name and a clip of it): every later diarized job labels it by name. The
    embedding (base64 float32) is made by a worker the first time a job needs it; `error` says why it could not."""

    __tablename__ = "speakers"
    __table_args__ = (UniqueConstraint("tenant", "name", name="uq_speakers_tenant_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(64))
    upload_id: Mapped[str] = mapped_column(String(32))
    embedding: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_state_created", "state", "created_at"),
        Index("ix_jobs_task_created", "task", "created_at"),
        Index("ix_jobs_sha", "content_sha256", "task"),
        Index("ix_jobs_tenant_state", "tenant", "state"),  # the active-jobs quota counts by these
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant: Mapped[str] = mapped_column(String(64), default=LOCAL_TENANT, index=True)
    task: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    input_ref: Mapped[str] = mapped_column(String(1100))  # upload:<id> | s3://bucket/key
    upload_id: Mapped[str | None] = mapped_column(ForeignKey("uploads.id"))
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(32), default="thinker")
    state: Mapped[JobState] = mapped_column(stored(JobState), default=JobState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    oom_retries: Mapped[int] = mapped_column(Integer, default=0)
    segment_seconds: Mapped[float | None] = mapped_column(Float)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    failure_class: Mapped[FailureClass | None] = mapped_column(stored(FailureClass, 32))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    segments_planned: Mapped[int | None] = mapped_column(Integer)
    segments_done: Mapped[int] = mapped_column(Integer, default=0)
    media_seconds: Mapped[float | None] = mapped_column(Float)
    engine_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    worker: Mapped[str | None] = mapped_column(String(200))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    outputs: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # format -> storage key
    formats: Mapped[list[str] | None] = mapped_column(JSON)  # result formats to write to storage as files
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # models.segments.Plan, once made
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # latest transcript revision
    approved_at: Mapped[datetime | None] = mapped_column()  # approved: the transcript is locked
    approved_by: Mapped[str | None] = mapped_column(String(200))
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column()
    started_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class JobEvent(Base):
    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    from_state: Mapped[JobState | None] = mapped_column(stored(JobState))
    to_state: Mapped[JobState] = mapped_column(stored(JobState))
    reason: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(200))


class JobSegment(Base):
    """One finished segment of a job; the primary key makes a second write of the same segment a no-op."""

    __tablename__ = "job_segments"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text, default="")
    reasoning: Mapped[str | None] = mapped_column(Text)
    audio_key: Mapped[str | None] = mapped_column(String(1024))
    warnings: Mapped[list[str] | None] = mapped_column(JSON)  # what its decode found (a truncated file, damage)
    words: Mapped[list[Any] | None] = mapped_column(JSON)  # [start, end, word] of spoken text (models.timing)
    timing: Mapped[str | None] = mapped_column(String(16))  # where the word times come from: aligner | speech
    tokens: Mapped[int] = mapped_column(Integer, default=0)  # tokens the model generated
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)  # tokens of the prompt, media included
    finish: Mapped[str | None] = mapped_column(String(16))  # stop | length (the answer hit max_new_tokens)
    voices: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # speaker windows and embeddings (diarized jobs)
    descriptions: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)  # audio description cues found here
    engine_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Batch(Base):
    """A group of jobs submitted together (JSONL in the OpenAI Batch format, or an S3 prefix)."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant: Mapped[str] = mapped_column(String(64), default=LOCAL_TENANT, index=True)
    source: Mapped[str] = mapped_column(String(1100))  # "jsonl" | s3://bucket/prefix
    total: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column()


class BatchItem(Base):
    """One line of a batch: its job, or why the line was rejected."""

    __tablename__ = "batch_items"

    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True)
    custom_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    line: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    error: Mapped[str | None] = mapped_column(Text)


class IdempotencyKey(Base):
    """An Idempotency-Key seen from a tenant: the same key and body return the same resource."""

    __tablename__ = "idempotency_keys"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    resource: Mapped[str] = mapped_column(String(16))  # jobs | batches
    resource_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class TenantQuota(Base):
    """Per-tenant overrides of the default limits in Settings (NULL: the default applies)."""

    __tablename__ = "tenant_quotas"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    max_active_jobs: Mapped[int | None] = mapped_column(Integer)
    max_upload_bytes: Mapped[int | None] = mapped_column(BigInteger)
    max_storage_bytes: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class TenantUsage(Base):
    """A tenant's number of active (queued, running, retrying) jobs, kept by core.jobs.active."""

    __tablename__ = "tenant_usage"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    active_jobs: Mapped[int] = mapped_column(Integer, default=0)


class TenantBucket(Base):
    """A grant: the tenant may name objects of an external bucket (under `prefix`; "" is the whole bucket) as job
    and batch inputs. The service bucket needs no grant: a tenant reads its own `tenants/<name>/` keys there."""

    __tablename__ = "tenant_buckets"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    bucket: Mapped[str] = mapped_column(String(63), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(1024), primary_key=True, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SigningSecret:
    """A Standard Webhooks secret ("whsec_..."); after a rotation the previous one still signs until it expires."""

    secret: Mapped[str] = mapped_column(SealedString())  # encrypted at rest (core.sealed)
    previous_secret: Mapped[str | None] = mapped_column(SealedString())
    previous_expires_at: Mapped[datetime | None] = mapped_column()


class WebhookEndpoint(SigningSecret, Base):
    """A receiver a tenant registered, with the event types it wants (empty: all)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(500))
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    failing_since: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class TenantWebhookSecret(SigningSecret, Base):
    """The secret that signs deliveries to a `webhook_url` given on a job or batch."""

    __tablename__ = "tenant_webhook_secrets"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookEvent(Base):
    """An event in the outbox, written in the transaction that caused it; its id is the `webhook-id` header."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_tenant_created", "tenant", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event to one receiver: pending -> sending -> succeeded | pending (retry) | failed | canceled."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_tenant_created", "tenant", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True)
    endpoint_id: Mapped[str | None] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True)
    url: Mapped[str | None] = mapped_column(String(2048))  # a job's or batch's own webhook_url
    state: Mapped[DeliveryState] = mapped_column(stored(DeliveryState), default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    lease_until: Mapped[datetime | None] = mapped_column()
    dispatched_at: Mapped[datetime | None] = mapped_column()
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery, kept for the tenant to see."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    url: Mapped[str] = mapped_column(String(2048))
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    response_body: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column()


metadata = Base.metadata


class TranscriptRevision(Base):
    """A correction of a job's transcript: who, when, what changed, and the whole revised result (every format
    renders from the latest). The machine's output is revision 0, the job's own `result`, never overwritten."""

    __tablename__ = "transcript_revisions"
    __table_args__ = (UniqueConstraint("job_id", "number", name="uq_transcript_revisions_job_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    changes: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
