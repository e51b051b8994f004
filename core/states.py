"""Every state and event name the service stores or sends, as enums (the database keeps their values)."""

from __future__ import annotations

import enum


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def final(self) -> bool:
        return self in FINAL_JOB_STATES


FINAL_JOB_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED})
ACTIVE_JOB_STATES = frozenset(set(JobState) - FINAL_JOB_STATES)  # queued, running, retrying: count against quotas


class UploadState(str, enum.Enum):
    PENDING = "pending"  # presigned: waiting for the client's PUT and confirm
    READY = "ready"


class BatchState(str, enum.Enum):
    IN_PROGRESS = "in_progress"
    CANCELING = "canceling"
    COMPLETED = "completed"
    CANCELED = "canceled"


class DeliveryState(str, enum.Enum):
    """A webhook delivery: pending -> sending -> succeeded | pending (retry) | failed | canceled."""

    PENDING = "pending"
    SENDING = "sending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class EventType(str, enum.Enum):
    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_CANCELED = "job.canceled"
    BATCH_COMPLETED = "batch.completed"
    WEBHOOK_DISABLED = "webhook.disabled"  # an endpoint was turned off (410 Gone, or failing for days)

    @classmethod
    def for_job(cls, state: JobState) -> EventType:
        return {
            JobState.SUCCEEDED: cls.JOB_SUCCEEDED,
            JobState.FAILED: cls.JOB_FAILED,
            JobState.CANCELED: cls.JOB_CANCELED,
        }[state]
