"""Job rows from requests: the one place a job row is built and inserted, for every door of core.intake (the API,
batches, the CLI and archive runs). It checks a request (task parameters, input, webhook, speech) and builds the
queued row; core.intake decides idempotency, quota and publishing around it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session, make_transient_to_detached

from core.config import Settings
from core.errors import Refusal, Refused
from core.grants import may_read
from core.jobs import active, machine
from core.jobs.inputs import TEXT_ONLY
from core.owned import get_owned
from core.schema import LOCAL_TENANT, Job, JobEvent, Upload, new_id, utcnow
from core.states import JobState, UploadState
from core.storage import Storage
from core.storage.keys import parse_s3_uri
from core.webhooks.endpoints import check_job_webhook
from models.tasks import TaskName, get_task, parse_params

TALKER_QUEUE = "talker"
THINKER_QUEUE = "thinker"


@dataclass(frozen=True)
class JobRequest:
    """What a caller asks for, whichever door it came in by."""

    tenant: str
    task: str
    input: str = ""  # an upload id (or upload:<id>), or s3://bucket/key
    params: dict[str, Any] = field(default_factory=dict)
    webhook_url: str | None = None
    formats: list[str] | None = None  # result files to write to storage (None: the default, none)
    local_file: Path | None = None  # an operator's archive run on this machine: the file itself, never a tenant's
    content_sha256: str | None = None  # of local_file, which archive runs find earlier jobs by


class InputError(Refused):
    """The job's input reference cannot be used (missing upload, bucket not allowed, empty file)."""

    title = "Input cannot be used"


def queue_for(params: dict[str, Any]) -> str:
    return TALKER_QUEUE if params.get("voice") else THINKER_QUEUE


def resolve_input(
    session: Session, storage: Storage, settings: Settings, ref: str, tenant: str = LOCAL_TENANT
) -> tuple[str, Upload | None]:
    """Check an input reference (upload id, upload:<id> or s3://bucket/key); return the normalised ref."""
    ref = ref.strip()
    if ref == TEXT_ONLY:
        return ref, None
    if ref.startswith("job:"):  # a finished transcript of the tenant's own (a subtitle track's input)
        source = get_owned(session, Job, ref.removeprefix("job:"), tenant)
        if source is None or source.state != JobState.SUCCEEDED:
            raise InputError(Refusal.INPUT_NOT_FOUND, f"no finished job {ref.removeprefix('job:')!r} of this tenant")
        return f"job:{source.id}", None
    if ref.startswith("s3://"):
        try:
            bucket, key = parse_s3_uri(ref)
        except ValueError as exc:
            raise InputError(Refusal.INVALID_INPUT, str(exc)) from exc
        # Not the tenant's to name, or missing (a local-folder service has no buckets): one answer, so a refusal
        # tells nothing about other tenants' keys.
        readable = settings.storage_backend == "s3" and may_read(session, settings, tenant, bucket, key)
        size = storage.size(key, bucket=bucket) if readable else None
        if size is None:
            raise InputError(Refusal.INPUT_NOT_FOUND, f"no object at {ref}")
        if size == 0:
            raise InputError(Refusal.EMPTY_INPUT, f"the object at {ref} is empty (0 bytes)")
        return ref, None
    upload_id = ref.removeprefix("upload:")
    upload = get_owned(session, Upload, upload_id, tenant)
    if upload is None:
        raise InputError(Refusal.INPUT_NOT_FOUND, f"no upload with id {upload_id!r}")
    if upload.state != UploadState.READY:
        raise InputError(Refusal.UPLOAD_NOT_READY, f"upload {upload_id} is not complete yet; confirm it first")
    if not upload.size_bytes:
        raise InputError(Refusal.EMPTY_INPUT, f"upload {upload_id} is empty (0 bytes)")
    return f"upload:{upload.id}", upload


def prepare_job(session: Session, storage: Storage, settings: Settings, request: JobRequest) -> Job:
    """Validate and insert a queued job in the caller's transaction, which commits it. Raises TaskInputError,
    InputError or WebhookError."""
    job = validated_job(session, storage, settings, request)
    add_jobs(session, [job])
    return job


def validated_job(session: Session, storage: Storage, settings: Settings, request: JobRequest) -> Job:
    """A queued job for this request, checked but not yet inserted (a batch inserts all its jobs at once)."""
    spec = get_task(request.task)
    params = parse_params(spec.name, request.params).model_dump(mode="json", exclude_unset=True)
    if params.get("voice") and not settings.speech_available():
        reason = "this deployment runs no talker: speech output (voice) is not available; ask for text, or run "
        raise InputError(Refusal.SPEECH_UNAVAILABLE, reason + "talker workers (omnimedia worker --queues talker)")
    checked = replace(request, task=spec.name.value, params=params)
    wants_job, is_job = spec.name is TaskName.SUBTITLES, request.input.strip().startswith("job:")
    if wants_job != is_job or (request.input.strip() == TEXT_ONLY and spec.name is not TaskName.CUSTOM):
        reason = "a subtitles job's input is job:<id>, a finished transcription" if wants_job else ""
        raise InputError(Refusal.INVALID_INPUT, reason or f"task {spec.name.value} needs a media input")
    if request.local_file is not None:
        return queued_job(settings, checked, f"file://{request.local_file}")
    ref, upload = resolve_input(session, storage, settings, request.input, request.tenant)
    for clip in params.get("speaker_references", []):  # the tenant's own uploads, like the input
        resolve_input(session, storage, settings, clip, request.tenant)
    if request.webhook_url is not None:
        webhook_url = check_job_webhook(session, settings, request.tenant, request.webhook_url)
        checked = replace(checked, webhook_url=webhook_url)
    return queued_job(settings, checked, ref, upload)


def queued_job(settings: Settings, request: JobRequest, input_ref: str, upload: Upload | None = None) -> Job:
    """A new queued job row for an already checked request (every column set: add_jobs inserts it as it is);
    its queue follows from its parameters (speech: talker)."""
    now = utcnow()
    return Job(
        id=new_id(),
        tenant=request.tenant,
        task=request.task,
        params=request.params,
        input_ref=input_ref,
        upload_id=upload.id if upload else None,
        content_sha256=upload.sha256 if upload else request.content_sha256,
        queue=queue_for(request.params),
        state=JobState.QUEUED,
        attempts=0,
        max_attempts=settings.max_attempts,
        oom_retries=0,
        segment_seconds=None,
        cancel_requested=False,
        failure_class=None,
        failure_reason=None,
        segments_planned=None,
        segments_done=0,
        media_seconds=None,
        engine_seconds=0.0,
        worker=None,
        result=None,
        outputs=None,
        formats=request.formats,
        plan=None,
        revision=0,
        approved_at=None,
        approved_by=None,
        webhook_url=request.webhook_url,
        created_at=now,
        queued_at=now,
        started_at=None,
        heartbeat_at=None,
        finished_at=None,
    )


_JOB_COLUMNS = [column.key for column in Job.__table__.columns]


def add_jobs(session: Session, jobs: list[Job]) -> None:
    """Insert queued jobs and their "created" events in the caller's transaction: one statement for all the jobs
    and one for their events, however many there are (no unit-of-work flush per job). The jobs join the session
    as persistent objects, and count among their tenants' active jobs when it commits (or earlier, under the
    quota: core.quotas.enforce_active_jobs)."""
    if not jobs:
        return
    session.execute(insert(Job), [{key: getattr(job, key) for key in _JOB_COLUMNS} for job in jobs])
    session.execute(insert(JobEvent), [machine.created_event(job) for job in jobs])
    for job in jobs:
        make_transient_to_detached(job)
        session.add(job)
    for tenant, count in Counter(job.tenant for job in jobs).items():
        active.added(session, tenant, count)
