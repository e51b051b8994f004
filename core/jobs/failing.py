"""A run's failure paths: fail at once, retry later with backoff (attempts capped in the database), or retry
with segments half as long after running out of memory or context; and the final-state metrics."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from core import metrics
from core.config import Settings
from core.jobs import machine
from core.jobs.machine import Transition
from core.schema import Job, JobSegment, utcnow
from core.states import FailureClass, JobState
from models.tasks import TaskParams, parse_params


class RunStatus(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    RETRY = "retry"  # run again after `delay_s`
    BUSY = "busy"  # another live worker holds the job: check again after `delay_s`
    SKIPPED = "skipped"  # nothing to do (finished, canceled, unknown id)


@dataclass(frozen=True)
class RunResult:
    status: RunStatus
    delay_s: float = 0.0
    reason: str | None = None
    engine_down: bool = False  # the engine could not load or died: this process must make way for a fresh one


SMALLER_RETRIES = 4  # halvings of the segment length after running out of memory or context (135 s -> ~8 s)


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(max_s, base_s * 2 ** max(attempt - 1, 0)))


def count_final(task: str, state: JobState, engine_s: float, media_s: float) -> None:
    """A job that reached a final state, in the worker's metrics."""
    metrics.JOBS.labels(task, state.value).inc()
    metrics.ENGINE_SECONDS.labels(task).inc(engine_s)
    if state is JobState.SUCCEEDED:
        metrics.MEDIA_SECONDS.labels(task).inc(media_s)
    metrics.record_gpu_memory()


class FailurePaths:
    """What JobRunner does when a run fails (it sets these attributes)."""

    settings: Settings
    sessions: sessionmaker[Session]
    worker: str

    def _fail(self, job_id: str, failure_class: FailureClass, reason: str) -> RunResult:
        with self.sessions() as session:
            if machine.transition(
                session,
                job_id,
                Transition.FAIL,
                reason,
                self.worker,
                failure_class=failure_class.value,
                failure_reason=reason,
            ):
                self._count_final(session, job_id)
        return RunResult(RunStatus.FAILED, reason=reason)

    def _count_final(self, session: Session, job_id: str) -> None:
        job = session.get(Job, job_id)
        if job is not None:
            self._count(job.task, job.state, job.engine_seconds or 0.0, job.media_seconds or 0.0)

    @staticmethod
    def _count(task: str, state: JobState, engine_s: float, media_s: float) -> None:
        count_final(task, state, engine_s, media_s)

    def _retry_or_fail(self, job_id: str, failure_class: FailureClass, reason: str) -> RunResult:
        with self.sessions() as session:
            job = session.get(Job, job_id)
            attempts = job.attempts if job else self.settings.max_attempts
            if job is None or attempts >= job.max_attempts:
                return self._fail(job_id, failure_class, f"{reason} (after {attempts} attempts)")
            delay = backoff_s(attempts, self.settings.retry_backoff_s, self.settings.retry_backoff_max_s)
            machine.transition(
                session,
                job_id,
                Transition.RETRY_LATER,
                f"{reason}; retry in {delay:.1f} s",
                self.worker,
                failure_class=failure_class.value,
                failure_reason=reason,
                queued_at=utcnow() + timedelta(seconds=delay),  # when it is due: the reconciler goes by it
            )
        return RunResult(RunStatus.RETRY, delay, reason)

    def _retry_smaller(self, job_id: str, failure_class: FailureClass, reason: str, used_s: float | None) -> RunResult:
        """Out of memory, or a prompt over the model's context: drop the finished segments and run again with
        segments half as long as this run's (re-planned from the stored plan, without decoding the file again),
        at most SMALLER_RETRIES times."""
        with self.sessions() as session:
            job = session.get(Job, job_id)
            if job is None or job.oom_retries >= SMALLER_RETRIES:
                return self._fail(job_id, failure_class, f"{reason}, even with smaller segments")
            half = (used_s or self._segment_seconds(job, parse_params(job.task, job.params))) / 2
            session.execute(delete(JobSegment).where(JobSegment.job_id == job_id))
            session.commit()
            machine.transition(
                session,
                job_id,
                Transition.RETRY_LATER,
                f"{reason}; retry with {half:.0f} s segments",
                self.worker,
                failure_class=failure_class.value,
                failure_reason=reason,
                segment_seconds=half,
                oom_retries=job.oom_retries + 1,
                segments_done=0,
                queued_at=utcnow(),
            )
        return RunResult(RunStatus.RETRY, 0.0, failure_class.value)

    def _segment_seconds(self, job: Job, params: TaskParams) -> float:
        """The out-of-memory override first, then the job's parameter, then the service default."""
        asked = job.segment_seconds or params.segment_seconds or self.settings.segment_seconds
        if params.voice is not None:  # the talker's memory grows with the answer it speaks: shorter segments
            return min(asked, self.settings.talker_segment_seconds)
        return asked
