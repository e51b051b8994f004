"""Request and response bodies of the public API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from core.schema import as_utc
from core.states import EventType, JobState
from models.tasks import TaskName

# Every timestamp leaves as RFC 3339 with its offset (SQLite hands back naive UTC datetimes).
Timestamp = Annotated[datetime, AfterValidator(as_utc)]


class OpenAIError(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """The error shape of the OpenAI-compatible routes."""

    error: OpenAIError


class ProblemDetails(BaseModel):
    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


ResultFormat = Literal["json", "txt", "srt", "vtt", "rttm"]
FORMATS_DOC = (
    "result files to also write to storage when the job succeeds (default: none); every format can be fetched "
    "from GET /v1/jobs/{id}/result either way, rendered from the result stored with the job"
)


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: TaskName
    input: str = Field(..., min_length=1, max_length=1100, description="An upload id, or s3://bucket/key")
    params: dict[str, Any] = Field(default_factory=dict, description="Task parameters; see GET /v1/tasks")
    webhook_url: str | None = Field(
        None, max_length=2048, description="called when the job ends; signed with the POST /v1/webhooks/secret secret"
    )
    formats: list[ResultFormat] | None = Field(None, max_length=5, description=FORMATS_DOC)


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    task: str
    params: dict[str, Any]
    input: str = Field(validation_alias="input_ref")
    state: JobState
    queue: str
    attempts: int
    max_attempts: int
    failure_class: str | None
    failure_reason: str | None
    cancel_requested: bool
    segments_planned: int | None
    segments_done: int
    progress: float | None = None
    media_seconds: float | None
    engine_seconds: float
    created_at: Timestamp
    queued_at: Timestamp | None
    started_at: Timestamp | None
    finished_at: Timestamp | None
    webhook_url: str | None = None
    formats: list[str] | None = None
    result_formats: list[str] = Field(default_factory=list, description="the formats GET .../result can return")
    revision: int = Field(default=0, description="the transcript's latest revision (0: the machine's, uncorrected)")
    approved_at: Timestamp | None = None


class JobList(BaseModel):
    data: list[JobOut]
    next_cursor: str | None


class JobEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: Timestamp
    from_state: str | None
    to_state: str
    reason: str | None
    worker: str | None


class UploadOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    filename: str
    content_type: str | None
    size_bytes: int | None
    sha256: str | None
    state: str
    created_at: Timestamp


class PresignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(..., min_length=1, max_length=512)
    content_type: str | None = Field(None, max_length=200)
    size_bytes: int = Field(..., ge=1, description="the exact size of the file; the URL accepts only this size")


class PresignOut(BaseModel):
    upload: UploadOut
    url: str
    method: str = "PUT"
    headers: dict[str, str]
    expires_in: int


class TaskOut(BaseModel):
    name: str
    description: str
    accepts: list[str]
    params_schema: dict[str, Any]


class WebhookEndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(..., min_length=1, max_length=2048, description="http(s) URL on a public address")
    events: list[EventType] = Field(default_factory=list, description="event types to receive; empty: all")
    description: str | None = Field(None, max_length=500)


class WebhookEndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, min_length=1, max_length=2048)
    events: list[EventType] | None = None
    description: str | None = Field(None, max_length=500)
    enabled: bool | None = None


class WebhookEndpointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    url: str
    events: list[str] = Field(validation_alias="event_types")
    description: str | None
    enabled: bool
    disabled_reason: str | None
    failing_since: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


class WebhookSecretOut(BaseModel):
    """A signing secret, shown only in this response. The previous one keeps signing until it expires."""

    secret: str
    previous_secret_expires_at: Timestamp | None = None


class WebhookEndpointCreated(WebhookEndpointOut):
    secret: str


class WebhookAttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    at: Timestamp
    url: str
    status_code: int | None
    latency_ms: float | None
    error: str | None
    response_body: str | None
    next_attempt_at: Timestamp | None


class WebhookDeliveryOut(BaseModel):
    id: str
    event_id: str = Field(description="the webhook-id header: the same on every attempt and replay")
    event_type: str
    endpoint_id: str | None
    url: str | None
    state: str
    attempts: int
    next_attempt_at: Timestamp | None
    last_status: int | None
    last_error: str | None
    created_at: Timestamp
    finished_at: Timestamp | None
    attempt_log: list[WebhookAttemptOut]


class WebhookEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    type: str
    payload: dict[str, Any]
    created_at: Timestamp


class BatchFromPrefix(BaseModel):
    """Every object under an S3 prefix (the tenant's own, or a granted bucket), one task for all."""

    model_config = ConfigDict(extra="forbid")

    input_prefix: str = Field(..., min_length=6, max_length=1100, pattern="^s3://", description="s3://bucket/prefix")
    task: TaskName
    params: dict[str, Any] = Field(default_factory=dict, description="the task's parameters; see GET /v1/tasks")


class BatchFromFile(BaseModel):
    """The lines of a JSONL file uploaded earlier."""

    model_config = ConfigDict(extra="forbid")

    input_file_id: str = Field(..., pattern="^[0-9a-f]{32}$", description="an upload holding the JSONL")
