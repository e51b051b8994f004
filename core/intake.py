"""The one door for requests: a request becomes queued jobs, for POST /v1/jobs, batches, the OpenAI-compatible
routes, the CLI and archive runs alike.

A job (or a batch with its jobs), its Idempotency-Key and its place in the tenant's active-jobs quota commit in one
transaction; the jobs are published after it (and again on a replay that finds them still queued: the request that
created them may have died before publishing; a second message for a queued job is harmless). An operator's archive
run on this machine names its files directly, counts against no quota and runs its jobs itself (no publish)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.batches import BatchLine, create_batch, queued_jobs
from core.config import Settings
from core.idempotency import create_once
from core.jobs.rows import JobRequest, prepare_job
from core.owned import get_owned
from core.queue import enqueue
from core.quotas import enforce_active_jobs
from core.schema import Batch, Job
from core.states import JobState
from core.storage import Storage
from core.webhooks.endpoints import check_job_webhook

__all__ = ["BatchRequest", "JobRequest", "submit_batch", "submit_job"]


@dataclass(frozen=True)
class BatchRequest:
    """A batch: its lines are read (parsed, or listed from a prefix) only when the batch is created."""

    tenant: str
    read_lines: Callable[[], tuple[list[BatchLine], str]]  # the lines and where they came from
    webhook_url: str | None = None


def submit_job(
    session: Session,
    storage: Storage,
    settings: Settings,
    request: JobRequest,
    idempotency_key: str | None = None,
    body: bytes = b"",
) -> tuple[Job, bool]:
    """The job this request names (created now, or the one its Idempotency-Key created earlier for the same `body`)
    and whether this call created it. Raises what core.jobs.rows and the quota raise."""
    new: list[Job] = []
    operator_run = request.local_file is not None

    def create() -> str:
        new.append(prepare_job(session, storage, settings, request))
        if not operator_run:
            enforce_active_jobs(session, settings, request.tenant)  # last: the counter row is locked to the commit
        return new[0].id

    ttl = settings.idempotency_ttl_s
    job_id, created = create_once(session, request.tenant, idempotency_key, body, "jobs", ttl, create)
    job = new[0] if created else get_owned(session, Job, job_id, request.tenant)
    assert job is not None  # the key names a job of this tenant
    if not operator_run and (created or job.state == JobState.QUEUED):
        enqueue(job.id, job.queue, settings)
    return job, created


def submit_batch(
    session: Session,
    storage: Storage,
    settings: Settings,
    request: BatchRequest,
    idempotency_key: str | None = None,
    body: bytes = b"",
) -> tuple[Batch, bool]:
    """The batch this request names (created now with its valid lines' jobs, or the one its Idempotency-Key created
    earlier for the same `body`) and whether this call created it. Raises BatchRejected and the quota's refusal."""
    webhook_url = request.webhook_url
    if webhook_url is not None:
        webhook_url = check_job_webhook(session, settings, request.tenant, webhook_url)

    def create() -> str:
        lines, source = request.read_lines()
        batch = create_batch(session, storage, settings, lines, source, request.tenant, webhook_url)[0]
        enforce_active_jobs(session, settings, request.tenant)  # last: the counter row is locked to the commit
        return batch.id

    keyed = body + b"\0" + (webhook_url or "").encode()
    ttl = settings.idempotency_ttl_s
    batch_id, created = create_once(session, request.tenant, idempotency_key, keyed, "batches", ttl, create)
    batch = get_owned(session, Batch, batch_id, request.tenant)
    assert batch is not None  # the key names a batch of this tenant
    for job in queued_jobs(session, batch.id) if created else []:
        enqueue(job.id, job.queue, settings)
    return batch, created
