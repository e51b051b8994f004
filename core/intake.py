"""A request becomes a queued job: the one path for POST /v1/jobs and the OpenAI-compatible routes alike. The
job, its Idempotency-Key and its place in the tenant's active-jobs quota commit in one transaction; the job is
published after it (and again on a replay that finds it still queued: the request that created it may have died
before publishing it; a second message for a queued job is harmless)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.config import Settings
from core.idempotency import create_once
from core.jobs.submit import prepare_job
from core.owned import get_owned
from core.queue import enqueue
from core.quotas import enforce_active_jobs
from core.schema import Job
from core.states import JobState
from core.storage import Storage


def submit_job(
    session: Session,
    storage: Storage,
    settings: Settings,
    tenant: str,
    task: str,
    params: dict[str, Any] | None,
    input_ref: str,
    *,
    webhook_url: str | None = None,
    formats: list[str] | None = None,
    idempotency_key: str | None = None,
    request: bytes = b"",
) -> tuple[Job, bool]:
    """The job this request names (created now, or the one its Idempotency-Key created earlier for the same
    `request` bytes) and whether this call created it. Raises what prepare_job and the quota raise."""
    new: list[Job] = []

    def create() -> str:
        new.append(prepare_job(session, storage, settings, task, params, input_ref, tenant, webhook_url, formats))
        enforce_active_jobs(session, settings, tenant)  # last: the tenant's counter row is locked until the commit
        return new[0].id

    job_id, created = create_once(session, tenant, idempotency_key, request, "jobs", settings.idempotency_ttl_s,
                                  create)  # fmt: skip
    job = new[0] if created else get_owned(session, Job, job_id, tenant)
    assert job is not None  # the key names a job of this tenant
    if created or job.state == JobState.QUEUED.value:
        enqueue(job.id, job.queue, settings)
    return job, created
