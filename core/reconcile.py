"""Find jobs stuck in queued or running whose message was lost or whose worker died; requeue or fail them.
Also completes batches whose last job's completion was missed, and purges expired idempotency keys and old
webhook events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from core import jobs
from core.config import Settings
from core.jobs import Transition
from core.schema import Batch, IdempotencyKey, Job, JobEvent, JobState, WebhookEvent, utcnow
from core.webhooks.outbox import complete_batch_if_done


@dataclass
class ReconcileReport:
    requeued: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    batches_completed: list[str] = field(default_factory=list)


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
    for batch_id in session.scalars(select(Batch.id).where(Batch.completed_at.is_(None)).limit(200)).all():
        if complete_batch_if_done(session, batch_id):  # normally done by the batch's last job; this is a backstop
            report.batches_completed.append(batch_id)
        session.commit()
    expired = utcnow() - timedelta(seconds=settings.idempotency_ttl_s)
    no_sync = {"synchronize_session": False}  # rows loaded in this session need no in-Python matching
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < expired), execution_options=no_sync)
    old_events = utcnow() - timedelta(seconds=settings.webhook_retention_s)
    session.execute(delete(WebhookEvent).where(WebhookEvent.created_at < old_events), execution_options=no_sync)
    session.commit()
    return report
