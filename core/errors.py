"""Requests the service refuses, as types. Each refusal names its kind (the problem type the API answers with);
api/problems.py holds the one table from kind to HTTP status."""

from __future__ import annotations

import enum
from typing import Any


class Refusal(enum.StrEnum):
    INVALID_INPUT = "invalid-input"
    INPUT_NOT_FOUND = "input-not-found"
    EMPTY_INPUT = "empty-input"
    UPLOAD_NOT_READY = "upload-not-ready"
    UPLOAD_TOO_LARGE = "upload-too-large"
    EMPTY_UPLOAD = "empty-upload"
    UPLOAD_MISSING = "upload-missing"
    PRESIGN_UNSUPPORTED = "presign-unsupported"
    QUOTA_EXCEEDED = "quota-exceeded"
    STORAGE_QUOTA_EXCEEDED = "storage-quota-exceeded"
    INVALID_WEBHOOK_URL = "invalid-webhook-url"
    WEBHOOK_SECRET_MISSING = "webhook-secret-missing"
    TOO_MANY_ENDPOINTS = "too-many-endpoints"
    ENDPOINT_DISABLED = "endpoint-disabled"
    EVENT_EXPIRED = "event-expired"
    INVALID_BATCH = "invalid-batch"
    IDEMPOTENCY_KEY_REUSED = "idempotency-key-reused"
    REPLAY_RATE_LIMITED = "replay-rate-limited"
    RATE_LIMITED = "rate-limited"
    VOICE_EXISTS = "voice-exists"
    TOO_MANY_VOICES = "too-many-voices"
    SPEECH_UNAVAILABLE = "speech-unavailable"
    REVISION_CONFLICT = "revision-conflict"
    TRANSCRIPT_LOCKED = "transcript-locked"


class ProblemKind(enum.StrEnum):
    """Kinds of problem the API answers with of its own (the caller, the body, the route, the service's state),
    beside the refusals core makes (Refusal); OpenAI-compatible routes keep OpenAI's snake_case codes."""

    UNAUTHORIZED = "unauthorized"
    ADMIN_DISABLED = "admin-disabled"
    TOO_LARGE = "too-large"
    BATCH_TOO_LARGE = "batch-too-large"
    BODY_TIMEOUT = "body-timeout"
    TOO_MANY_REQUESTS = "too-many-requests"
    OVERLOADED = "overloaded"
    DATABASE_BUSY = "database-busy"
    DATABASE_UNAVAILABLE = "database-unavailable"
    STORAGE_UNAVAILABLE = "storage-unavailable"
    VALIDATION_ERROR = "validation-error"
    INVALID_PARAMS = "invalid-params"
    UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type"
    NOT_FOUND = "not-found"
    METHOD_NOT_ALLOWED = "method-not-allowed"
    HTTP_ERROR = "http-error"
    INTERNAL_ERROR = "internal-error"
    JOB_FINISHED = "job-finished"
    JOB_NOT_FINISHED = "job-not-finished"
    JOB_NOT_RETRYABLE = "job-not-retryable"
    FORMAT_NOT_AVAILABLE = "format-not-available"
    OUTPUT_MISSING = "output-missing"
    # OpenAI-compatible routes (OpenAI's error codes)
    INVALID_REQUEST = "invalid_request"
    EMPTY_FILE = "empty_file"
    MODEL_NOT_FOUND = "model_not_found"
    JOB_NOT_FOUND = "job_not_found"
    JOB_CANCELED = "job_canceled"
    JOB_STILL_RUNNING = "job_still_running"


class Refused(Exception):
    """A request the service will not carry out, with a reason for the caller. Subclasses set the title."""

    title = "Request refused"

    def __init__(
        self, kind: Refusal, reason: str, retry_after_s: int | None = None, title: str | None = None, **extra: Any
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        if title:
            self.title = title
        self.reason = reason
        self.retry_after_s = retry_after_s  # waiting helps: the API sends Retry-After
        self.extra = extra  # more fields for the problem body (limit_bytes, errors)
