"""Every state, failure class and event name the service stores or sends, as enums (StrEnum: each member is its
own stored string, so the database keeps their values and f-strings print them as they are)."""

from __future__ import annotations

import enum


class JobState(enum.StrEnum):
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


class UploadState(enum.StrEnum):
    PENDING = "pending"  # presigned: waiting for the client's PUT and confirm
    READY = "ready"


class BatchState(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    CANCELING = "canceling"
    COMPLETED = "completed"
    CANCELED = "canceled"


class DeliveryState(enum.StrEnum):
    """A webhook delivery: pending -> sending -> succeeded | pending (retry) | failed | canceled."""

    PENDING = "pending"
    SENDING = "sending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class EventType(enum.StrEnum):
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


class FailureClass(enum.StrEnum):
    """Why a job failed (core.jobs.failures.classify decides it from the exception's type)."""

    MEDIA = "media"  # the file cannot be used: never retried
    INVALID_INPUT = "invalid_input"  # the task cannot run on this input or with these parameters
    UNSUPPORTED = "unsupported"  # the loaded checkpoint or backend cannot do it
    ENGINE = "engine"  # the engine refused for a reason of its own (e.g. planned segments leave a gap)
    OUT_OF_MEMORY = "out_of_memory"  # retried with half-length segments
    TOO_LONG = "too_long"  # a segment's prompt over the model's context: retried with half-length segments
    TRANSIENT = "transient"  # storage, database or network: retried with backoff
    INTERNAL = "internal"  # a bug: retried, then failed with the error
    EXHAUSTED = "exhausted"  # attempts used up with no class recorded
    LOST = "lost"  # the worker or the message was lost too often

    @property
    def retried(self) -> bool:
        """Whether the runner tries again (up to the attempts cap) rather than failing at once."""
        return self in (
            FailureClass.TRANSIENT,
            FailureClass.INTERNAL,
            FailureClass.OUT_OF_MEMORY,
            FailureClass.TOO_LONG,
        )

    @property
    def smaller(self) -> bool:
        """Whether a retry cuts the media into shorter segments."""
        return self in (FailureClass.OUT_OF_MEMORY, FailureClass.TOO_LONG)


RETRIED = frozenset({FailureClass.TRANSIENT, FailureClass.INTERNAL, FailureClass.OUT_OF_MEMORY, FailureClass.TOO_LONG})
