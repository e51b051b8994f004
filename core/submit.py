"""Creating jobs and uploads: validation shared by the API and the CLI."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core import jobs
from core.config import Settings
from core.runner import upload_key
from core.schema import LOCAL_TENANT, Job, JobState, Upload, new_id, utcnow
from core.storage import Storage, parse_s3_uri
from core.webhooks.endpoints import WebhookError, check_job_webhook
from models.tasks import get_task, parse_params

TALKER_QUEUE = "talker"
THINKER_QUEUE = "thinker"


class InputError(Exception):
    """The job's input reference cannot be used (missing upload, bucket not allowed, empty file)."""

    def __init__(self, reason: str, kind: str = "invalid-input") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


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
            raise InputError(str(exc)) from exc
        if bucket not in settings.allowed_input_buckets and bucket != settings.s3_bucket:
            raise InputError(f"bucket {bucket!r} is not an allowed input bucket", "forbidden-bucket")
        size = storage.size(key, bucket=bucket)
        if size is None:
            raise InputError(f"no object at {ref}", "input-not-found")
        if size == 0:
            raise InputError(f"the object at {ref} is empty (0 bytes)", "empty-input")
        return ref, None
    upload_id = ref.removeprefix("upload:")
    upload = session.get(Upload, upload_id) if upload_id.isalnum() else None
    if upload is None or upload.tenant != tenant:  # another tenant's upload does not exist for this caller
        raise InputError(f"no upload with id {upload_id!r}", "input-not-found")
    if upload.state != "ready":
        raise InputError(f"upload {upload_id} is not complete yet; confirm it first", "upload-not-ready")
    if not upload.size_bytes:
        raise InputError(f"upload {upload_id} is empty (0 bytes)", "empty-input")
    return f"upload:{upload.id}", upload


def create_job(
    session: Session,
    storage: Storage,
    settings: Settings,
    task: str,
    params: dict[str, Any] | None,
    input_ref: str,
    tenant: str = LOCAL_TENANT,
    webhook_url: str | None = None,
) -> Job:
    """Validate and insert a queued job (not yet enqueued). Raises TaskInputError or InputError."""
    spec = get_task(task)
    validated = parse_params(spec.name, params)
    clean_params = validated.model_dump(exclude_unset=True)
    ref, upload = resolve_input(session, storage, settings, input_ref, tenant)
    if webhook_url is not None:
        try:
            webhook_url = check_job_webhook(session, settings, tenant, webhook_url)
        except WebhookError as exc:
            raise InputError(exc.reason, exc.kind) from exc
    now = utcnow()
    job = Job(
        id=new_id(), tenant=tenant, task=spec.name.value, params=clean_params, input_ref=ref,
        upload_id=upload.id if upload else None, content_sha256=upload.sha256 if upload else None,
        queue=queue_for(clean_params), state=JobState.QUEUED.value, max_attempts=settings.max_attempts,
        created_at=now, queued_at=now, webhook_url=webhook_url,
    )  # fmt: skip
    session.add(job)
    session.flush()
    jobs.record_created(session, job)
    session.commit()
    return job


def new_upload(
    session: Session, filename: str, content_type: str | None, state: str = "ready", tenant: str = LOCAL_TENANT
) -> Upload:
    upload_id = new_id()
    upload = Upload(
        id=upload_id, tenant=tenant, filename=filename[:512], content_type=content_type,
        storage_key=upload_key(tenant, upload_id), state=state,
    )  # fmt: skip
    session.add(upload)
    return upload
