"""The one job state machine. Every transition is a conditional UPDATE (... WHERE state IN (...)), so a
task delivered twice, a late worker or a cancel race can never run a finished job again or write its
result twice. Each successful transition writes a job event in the same transaction, and a final one
everything `finished` adds (its webhook event, its batch's completion)."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from core.jobs import active, finished
from core.schema import Job, JobEvent, utcnow
from core.states import ACTIVE_JOB_STATES, JobState

Q, R, RT, S, F, C = (
    JobState.QUEUED,
    JobState.RUNNING,
    JobState.RETRYING,
    JobState.SUCCEEDED,
    JobState.FAILED,
    JobState.CANCELED,
)  # short names for the table below only


class Transition(enum.Enum):
    """Named transitions: (allowed source states, target state)."""

    START = ({Q, RT}, R)
    TAKE_OVER = ({R}, R)  # a redelivered job whose worker's lease expired
    SUCCEED = ({R}, S)
    FAIL = ({Q, R, RT}, F)
    RETRY_LATER = ({R}, RT)
    CANCEL = ({Q, RT}, C)
    CANCEL_RUNNING = ({R}, C)  # by the worker, between segments, after a cancel request
    REQUEUE = ({F, C}, Q)  # user retry
    RECLAIM = ({R, RT}, Q)  # reconciler: the worker died or the message was lost

    @property
    def sources(self) -> set[JobState]:
        return self.value[0]

    @property
    def target(self) -> JobState:
        return self.value[1]


def transition(
    session: Session,
    job_id: str,
    step: Transition,
    reason: str | None = None,
    actor: str | None = None,
    extra_where: Any = None,
    known: Job | None = None,
    **values: Any,
) -> bool:
    """Apply one transition if the job is in an allowed state; commit; return whether it applied. One read of the
    job (none when the caller passes the row it just read as `known`: the UPDATE checks its state anyway), and an
    UPDATE that returns the changed row (the session's copy of the job is current afterwards)."""
    current = known if known is not None else session.get(Job, job_id, populate_existing=True)
    if current is None:
        return False
    from_state = current.state
    if JobState(from_state) not in step.sources:
        return False
    now = utcnow()
    values = {"state": step.target.value, **values}
    if step.target.final:
        values.setdefault("finished_at", now)
    where = [Job.id == job_id, Job.state == from_state]
    if extra_where is not None:
        where.append(extra_where)
    changed = session.execute(
        update(Job)
        .where(and_(*where))
        .values(**values)
        .returning(Job)
        .execution_options(synchronize_session=False, populate_existing=True)
    ).scalar_one_or_none()
    if changed is None:
        session.rollback()
        return False
    session.add(
        JobEvent(job_id=job_id, at=now, from_state=from_state, to_state=step.target.value, reason=reason, worker=actor)
    )
    if step.target.final:
        finished.job_finished(session, changed)  # its webhook event commits with the final state, or not at all
    was_active, is_active = JobState(from_state) in ACTIVE_JOB_STATES, step.target in ACTIVE_JOB_STATES
    if was_active != is_active:
        session.flush()  # the counter row is locked from its update to the commit: everything else goes first
        active.changed(session, current.tenant, 1 if is_active else -1)
    session.commit()
    return True


def created_event(job: Job) -> dict[str, Any]:
    """The first event of a new job, as the row core.jobs.rows.add_jobs inserts."""
    return {"job_id": job.id, "at": job.created_at, "from_state": None, "to_state": job.state, "reason": "created"}


def lease_expired(now: datetime, lease_s: float) -> ColumnElement[bool]:
    """The job's worker has not heart-beaten for `lease_s` seconds (or never did)."""
    return or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < now - timedelta(seconds=lease_s))


def start(session: Session, job_id: str, worker: str, lease_s: float, known: Job | None = None) -> bool:
    """Claim a job for this worker: a queued/retrying job, or a running one whose lease ran out. `known`: the row
    the caller just read in this session."""
    now = utcnow()
    claim: dict[str, Any] = {"worker": worker, "heartbeat_at": now, "attempts": Job.attempts + 1}
    if transition(session, job_id, Transition.START, "started", worker, started_at=now, known=known, **claim):
        return True
    stale = lease_expired(now, lease_s)
    return transition(session, job_id, Transition.TAKE_OVER, "lease expired; taken over", worker, stale, **claim)


def requeue(session: Session, job_id: str) -> bool:
    """A user's retry of a failed or canceled job: attempts start over; finished segments are kept."""
    return transition(
        session,
        job_id,
        Transition.REQUEUE,
        "retried by request",
        attempts=0,
        cancel_requested=False,
        failure_class=None,
        failure_reason=None,
        finished_at=None,
        queued_at=utcnow(),
        oom_retries=0,
    )


def heartbeat(session: Session, job_id: str, worker: str) -> bool:
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.RUNNING, Job.worker == worker)
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount == 1  # type: ignore[attr-defined]


def request_cancel(session: Session, job_id: str) -> JobState | None:
    """Cancel now if not running; a running job is flagged and stops between segments."""
    job = session.get(Job, job_id)
    if job is None:
        return None
    if transition(session, job_id, Transition.CANCEL, "canceled by request", cancel_requested=True):
        return JobState.CANCELED
    running = Job.state == JobState.RUNNING
    session.execute(update(Job).where(Job.id == job_id, running).values(cancel_requested=True))
    session.commit()
    session.refresh(job)
    return job.state


def stale_jobs(session: Session, now: datetime, worker_lost_s: float, queued_deadline_s: float) -> list[Job]:
    """Jobs whose worker stopped heart-beating; retries due for a whole lease that nobody started (their delayed
    message died with the worker that held it); and jobs queued so long their message was probably lost (a
    healthy backlog waits longer than a lease, so plain queued jobs wait for the deadline)."""
    lost_worker = and_(Job.state == JobState.RUNNING, lease_expired(now, worker_lost_s))
    lost_retry = and_(Job.state == JobState.RETRYING, Job.queued_at < now - timedelta(seconds=worker_lost_s))
    waiting = Job.state.in_([JobState.QUEUED, JobState.RETRYING])
    lost_message = and_(waiting, Job.queued_at < now - timedelta(seconds=queued_deadline_s))
    return list(session.query(Job).filter(or_(lost_worker, lost_retry, lost_message)).limit(500))
