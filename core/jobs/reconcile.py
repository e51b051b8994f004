"""Find jobs stuck in queued or running whose message was lost or whose worker died; requeue or fail them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from core import queue
from core.config import Settings
from core.jobs import machine
from core.jobs.machine import Transition
from core.jobs.rows import TALKER_QUEUE, THINKER_QUEUE
from core.schema import Job, JobEvent, utcnow
from core.states import FailureClass, JobState

# A running job whose heartbeat is a whole lease old has lost its worker (it renews every third of a lease); the
# run itself stops at its next boundary once it cannot renew (core.jobs.runner), so taking over is safe.
WORKER_LOST_LEASES = 1


@dataclass
class ReconcileReport:
    requeued: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    still_held: int = 0  # waiting jobs a new broker already held: not sent again


JOB_QUEUES = (THINKER_QUEUE, TALKER_QUEUE)
MAX_PAGES = 200  # of 500 jobs each: a broker reset re-sends at most 100,000 waiting jobs in one pass


def reconcile_jobs(
    session: Session,
    settings: Settings,
    send: Callable[[str, str], None] = queue.enqueue,
    broker_reset: bool = False,
) -> ReconcileReport:
    """One pass. `send(job_id, queue)` publishes a job again (the publisher, core.queue, unless a test listens).
    After a broker reset every waiting job's message is gone: all of them are re-sent now, not after the queued
    deadline (which otherwise keeps a healthy backlog from being sent twice)."""
    report = ReconcileReport()
    now = utcnow()
    deadline_s = 0.0 if broker_reset else settings.queued_deadline_s
    # A broker without the marker may be new and have taken messages all along: a waiting job it holds is not
    # sent twice (its queued_at moves on, so it leaves this selection); the others were lost and are sent again.
    held = (queue.held_job_ids(settings, JOB_QUEUES) or set()) if broker_reset else set()
    for _ in range(MAX_PAGES):  # a handled job leaves the selection (new state, or queued_at after `now`)
        page = machine.stale_jobs(session, now, settings.lease_s * WORKER_LOST_LEASES, deadline_s)
        if not page:
            break
        waiting_held = [j.id for j in page if j.id in held and j.state != JobState.RUNNING]
        if waiting_held:
            session.execute(update(Job).where(Job.id.in_(waiting_held)).values(queued_at=now))
            session.commit()
            report.still_held += len(waiting_held)
        _reconcile_page(session, settings, send, [j for j in page if j.id not in waiting_held], now, report)
    return report


def _reconcile_page(
    session: Session,
    settings: Settings,
    send: Callable[[str, str], None],
    page: list[Job],
    now: datetime,
    report: ReconcileReport,
) -> None:
    worker_lost_s = settings.lease_s * WORKER_LOST_LEASES
    for job in page:
        if job.attempts >= job.max_attempts:
            reason = f"worker lost or message lost after {job.attempts} attempts"
            if machine.transition(
                session,
                job.id,
                Transition.FAIL,
                reason,
                "reconciler",
                failure_class=job.failure_class or FailureClass.LOST,
                failure_reason=reason,
            ):
                report.failed.append(job.id)
            continue
        if job.state == JobState.RUNNING:
            if machine.transition(
                session,
                job.id,
                Transition.RECLAIM,
                "worker stopped heart-beating; requeued",
                "reconciler",
                extra_where=machine.lease_expired(now, worker_lost_s),
                queued_at=now,
                worker=None,
            ):
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
