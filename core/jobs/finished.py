"""Everything a job's final state sets off, written in the same transaction as that state: its webhook event
(outbox), its transcript in the search index, and, when it was the last job of a batch, the batch's completion and
`batch.completed` event."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import search
from core.config import get_settings
from core.schema import Batch, BatchItem, Job, utcnow
from core.states import BatchState, EventType, JobState
from core.webhooks import outbox

MAX_REASON_CHARS = 2_000


def public_path(path: str) -> str:
    """An API path, absolute when the service knows its public URL (OMNIMEDIA_PUBLIC_URL)."""
    base = get_settings().public_url
    return f"{base.rstrip('/')}{path}" if base else path


def job_data(job: Job) -> dict[str, Any]:
    """The thin webhook payload of a finished job."""
    data: dict[str, Any] = {"id": job.id, "object": "job", "task": job.task, "state": job.state}
    if job.state == JobState.SUCCEEDED:
        data["result_url"] = public_path(f"/v1/jobs/{job.id}/result")
    else:
        data["failure_class"] = job.failure_class
        data["failure_reason"] = (job.failure_reason or "")[:MAX_REASON_CHARS] or None
    return data


def job_finished(session: Session, job: Job) -> None:
    """Called by the state machine inside the transaction that made the job final, with the job as it now is."""
    if not job.state.final:
        return
    event = EventType.for_job(job.state)
    outbox.emit(session, job.tenant, event, job_data(job), [job.webhook_url] if job.webhook_url else [])
    if job.state == JobState.SUCCEEDED:
        search.index_job(session, job)  # searchable from the moment it succeeded, never by a later scan
    batch_id = session.scalar(select(BatchItem.batch_id).where(BatchItem.job_id == job.id).limit(1))
    if batch_id:
        complete_batch_if_done(session, batch_id)


def batch_state(batch: Batch, job_states: Iterable[str]) -> BatchState:
    """The one rule for a batch's state, from its jobs' states: in progress (or canceling) while any job can still
    run; once all are final, completed (or canceled, when a cancel was asked for)."""
    if all(JobState(state).final for state in job_states):
        return BatchState.CANCELED if batch.cancel_requested else BatchState.COMPLETED
    return BatchState.CANCELING if batch.cancel_requested else BatchState.IN_PROGRESS


def complete_batch_if_done(session: Session, batch_id: str) -> bool:
    """Mark a batch completed (and emit batch.completed) once all its jobs are final. The batch row is locked
    first, so of two jobs finishing at once the second sees the first and exactly one of them completes it."""
    batch = session.scalar(select(Batch).where(Batch.id == batch_id, Batch.completed_at.is_(None)).with_for_update())
    if batch is None:
        return False
    rows = session.execute(
        select(Job.state, func.count())
        .join(BatchItem, BatchItem.job_id == Job.id)
        .where(BatchItem.batch_id == batch_id)
        .group_by(Job.state)
    ).all()
    counts = {state: count for state, count in rows}
    state = batch_state(batch, counts)
    if state not in (BatchState.COMPLETED, BatchState.CANCELED):
        return False
    batch.completed_at = utcnow()
    data = {
        "id": batch.id,
        "object": "batch",
        "state": state.value,
        "counts": counts,
        "invalid_lines": batch.invalid,
        "results_url": public_path(f"/v1/batches/{batch.id}/results"),
    }
    outbox.emit(
        session, batch.tenant, EventType.BATCH_COMPLETED, data, [batch.webhook_url] if batch.webhook_url else []
    )
    return True


def complete_missed_batches(session: Session, limit: int = 200) -> list[str]:
    """A backstop for the reconciler: complete batches whose last job's completion was missed."""
    completed = []
    for batch_id in session.scalars(select(Batch.id).where(Batch.completed_at.is_(None)).limit(limit)).all():
        if complete_batch_if_done(session, batch_id):
            completed.append(batch_id)
        session.commit()
    return completed
