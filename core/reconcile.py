"""Find jobs stuck in queued or running whose message was lost or whose worker died; requeue or fail them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import delete, or_, update
from sqlalchemy.orm import Session

from core import jobs
from core.config import Settings
from core.jobs import Transition
from core.schema import IdempotencyKey, Job, JobEvent, JobState, utcnow


@dataclass
class ReconcileReport:
    requeued: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def reconcile(session: Session, settings: Settings, send: Callable[[str, str], None]) -> ReconcileReport:
    """One pass. `send(job_id, queue)` publishes the job again."""
    report = ReconcileReport()
    now = utcnow()
    for job in jobs.stale_jobs(session, now, settings.lease_s, settings.queued_deadline_s):
        if job.attempts >= job.max_attempts:
            reason = f"worker lost or message lost after {job.attempts} attempts"
            if jobs.transition(
                session, job.id, Transition.FAIL, reason, "reconciler",
                failure_class=job.failure_class or "lost", failure_reason=reason,
            ):  # fmt: skip
                report.failed.append(job.id)
            continue
        if job.state == JobState.RUNNING.value:
            stale = or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < now - timedelta(seconds=settings.lease_s * 3))
            if jobs.transition(
                session, job.id, Transition.RECLAIM, "worker stopped heart-beating; requeued", "reconciler",
                extra_where=stale, queued_at=now, worker=None,
            ):  # fmt: skip
                send(job.id, job.queue)
                report.requeued.append(job.id)
        else:  # queued too long: the broker message was probably lost; publishing again is safe
            session.execute(update(Job).where(Job.id == job.id, Job.state == job.state).values(queued_at=now))
            session.add(
                JobEvent(job_id=job.id, from_state=job.state, to_state=job.state, reason="re-sent by reconciler")
            )
            session.commit()
            send(job.id, job.queue)
            report.resent.append(job.id)
    expired = utcnow() - timedelta(seconds=settings.idempotency_ttl_s)
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < expired))
    session.commit()
    return report
