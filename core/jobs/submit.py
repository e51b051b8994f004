"""Creating a job: the one place a job row is written, for the API, batches and archive runs alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.config import Settings
from core.errors import Refusal, Refused
from core.grants import may_read
from core.jobs import machine
from core.owned import get_owned
from core.schema import LOCAL_TENANT, Job, Upload, new_id, utcnow
from core.states import JobState, UploadState
from core.storage import Storage
from core.storage.keys import parse_s3_uri
from core.webhooks.endpoints import check_job_webhook
from models.tasks import get_task, parse_params

TALKER_QUEUE = "talker"
THINKER_QUEUE = "thinker"


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
    if upload.state != UploadState.READY.value:
        raise InputError(Refusal.UPLOAD_NOT_READY, f"upload {upload_id} is not complete yet; confirm it first")
    if not upload.size_bytes:
        raise InputError(Refusal.EMPTY_INPUT, f"upload {upload_id} is empty (0 bytes)")
    return f"upload:{upload.id}", upload


def prepare_job(
    session: Session,
    storage: Storage,
    settings: Settings,
    task: str,
    params: dict[str, Any] | None,
    input_ref: str,
    tenant: str = LOCAL_TENANT,
    webhook_url: str | None = None,
) -> Job:
    """Validate and insert a queued job in the caller's transaction, which commits it (a batch commits all its jobs
    at once). Raises TaskInputError, InputError or WebhookError."""
    spec = get_task(task)
    clean_params = parse_params(spec.name, params).model_dump(mode="json", exclude_unset=True)
    ref, upload = resolve_input(session, storage, settings, input_ref, tenant)
    if webhook_url is not None:
        webhook_url = check_job_webhook(session, settings, tenant, webhook_url)
    job = queued_job(settings, tenant, spec.name.value, clean_params, ref, upload=upload, webhook_url=webhook_url)
    add_job(session, job)
    return job


def queued_job(
    settings: Settings,
    tenant: str,
    task: str,
    params: dict[str, Any],
    input_ref: str,
    upload: Upload | None = None,
    content_sha256: str | None = None,
    webhook_url: str | None = None,
) -> Job:
    """A new queued job row for already validated parameters; its queue follows from them (speech: talker)."""
    now = utcnow()
    return Job(
        id=new_id(), tenant=tenant, task=task, params=params, input_ref=input_ref,
        upload_id=upload.id if upload else None, content_sha256=upload.sha256 if upload else content_sha256,
        queue=queue_for(params), state=JobState.QUEUED.value, max_attempts=settings.max_attempts,
        created_at=now, queued_at=now, webhook_url=webhook_url,
    )  # fmt: skip


def add_job(session: Session, job: Job) -> None:
    """Insert a queued job with its "created" event (in the caller's transaction)."""
    session.add(job)
    session.flush()
    machine.record_created(session, job)
