"""Run one job by id: fetch input, plan segments, run the engine per segment (checkpointed), write outputs.

Shared by the Celery task (workers/), the embedded in-process worker and archive runs; `build_runner` makes the
one runner (and engine) of a process. Failures are classified by type (core.jobs.failures): bad media and
invalid input fail at once; transient errors retry with backoff; out-of-memory retries once with smaller
segments; attempts are capped in the database."""

from __future__ import annotations

import enum
import logging
import random
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core import metrics
from core.config import Settings
from core.db import get_sessionmaker
from core.grants import may_read
from core.jobs import machine
from core.jobs.failures import FailureClass, classify, public_reason
from core.jobs.machine import Transition
from core.jobs.outputs import write_outputs
from core.schema import Job, JobSegment, utcnow
from core.states import JobState
from core.storage import Storage, get_storage
from core.storage.keys import output_key, parse_s3_uri, upload_key
from models.batcher import BatchingEngine
from models.chunking import Span
from models.engine import Engine, GenerationRequest
from models.errors import MediaError, TaskInputError
from models.loader import load_engine
from models.media import MediaInfo, probe
from models.segments import load_segment, plan_file
from models.speech import wav_bytes
from models.tasks import TaskParams, TaskSpec, check_media, get_task, parse_params

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class _Run:
    """One claimed run of a job: its attempt number (which scopes its output keys) and its lease."""

    attempt: int
    lease: _Heartbeat


LEASE_LOST = RunResult(RunStatus.SKIPPED, reason="lease lost: another worker holds the job now")


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(max_s, base_s * 2 ** max(attempt - 1, 0)))


class _Heartbeat:
    """Keeps the job's lease fresh while a long segment runs, and knows when it no longer holds it: another worker
    took the job over, or no renewal has succeeded for a whole lease (the database is unreachable)."""

    def __init__(self, sessions: sessionmaker[Session], job_id: str, worker: str, lease_s: float) -> None:
        self._stop = threading.Event()
        self._lease_s = lease_s
        self._renewed = time.monotonic()
        self._taken = False
        every_s = max(lease_s / 3, 0.5)
        self._thread = threading.Thread(
            target=self._beat, args=(sessions, job_id, worker, every_s), daemon=True, name=f"heartbeat-{job_id}"
        )

    @property
    def lost(self) -> bool:
        return self._taken or time.monotonic() - self._renewed > self._lease_s

    def _beat(self, sessions: sessionmaker[Session], job_id: str, worker: str, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                with sessions() as session:
                    if machine.heartbeat(session, job_id, worker):
                        self._renewed = time.monotonic()
                    else:
                        self._taken = True
            except Exception:  # a missed beat shortens the lease; a lease that runs out stops the run
                log.warning("heartbeat failed for job %s", job_id, exc_info=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class JobRunner:
    """Executes jobs against one engine, one storage and one database."""

    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], storage: Storage, engine: Engine, worker: str
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.storage = storage
        self.engine = engine
        self.worker = worker

    # -- entry point ------------------------------------------------------------------------------
    def run(self, job_id: str) -> RunResult:
        with self.sessions() as session:
            job = session.get(Job, job_id)
            if job is None:
                return RunResult(RunStatus.SKIPPED, reason="no such job")
            if JobState(job.state).final:
                return RunResult(RunStatus.SKIPPED, reason=f"job already {job.state}")
            if job.state != JobState.RUNNING.value and job.attempts >= job.max_attempts:
                machine.transition(
                    session, job_id, Transition.FAIL, f"gave up after {job.attempts} attempts", self.worker,
                    failure_class=job.failure_class or FailureClass.EXHAUSTED.value,
                    failure_reason=f"gave up after {job.attempts} attempts: {job.failure_reason or 'unknown error'}",
                )  # fmt: skip
                return RunResult(RunStatus.FAILED, reason="attempts exhausted")
            if not machine.start(session, job_id, self.worker, self.settings.lease_s):
                session.refresh(job)
                if job.state == JobState.RUNNING.value:
                    return RunResult(RunStatus.BUSY, self.settings.lease_s, "held by a live worker")
                return RunResult(RunStatus.SKIPPED, reason=f"job is {job.state}")
            session.refresh(job)
            if job.queued_at and job.started_at:
                metrics.QUEUE_WAIT.labels(job.task).observe((job.started_at - job.queued_at).total_seconds())
            attempt = job.attempts
        with _Heartbeat(self.sessions, job_id, self.worker, self.settings.lease_s) as lease:
            return self._run_claimed(job_id, _Run(attempt, lease))

    def _run_claimed(self, job_id: str, run: _Run) -> RunResult:
        try:
            return self._execute(job_id, run)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            failure_class = classify(exc)
            reason = public_reason(failure_class, exc)
            if failure_class.retried:  # the tenant sees the class only; the detail is logged here
                log.error("job %s failed (%s): %s: %s", job_id, failure_class.value, type(exc).__name__, exc,
                          exc_info=failure_class is FailureClass.INTERNAL)  # fmt: skip
            if failure_class is FailureClass.OUT_OF_MEMORY:
                return self._retry_smaller(job_id, reason)
            if not failure_class.retried:
                return self._fail(job_id, failure_class, reason)
            return self._retry_or_fail(job_id, failure_class, reason)

    # -- failure paths ----------------------------------------------------------------------------
    def _fail(self, job_id: str, failure_class: FailureClass, reason: str) -> RunResult:
        with self.sessions() as session:
            if machine.transition(
                session, job_id, Transition.FAIL, reason, self.worker,
                failure_class=failure_class.value, failure_reason=reason,
            ):  # fmt: skip
                self._count_final(session, job_id)
        return RunResult(RunStatus.FAILED, reason=reason)

    def _count_final(self, session: Session, job_id: str) -> None:
        job = session.get(Job, job_id)
        if job is None:
            return
        metrics.JOBS.labels(job.task, job.state).inc()
        metrics.ENGINE_SECONDS.labels(job.task).inc(job.engine_seconds or 0.0)
        if job.state == JobState.SUCCEEDED.value:
            metrics.MEDIA_SECONDS.labels(job.task).inc(job.media_seconds or 0.0)
        metrics.record_gpu_memory()

    def _retry_or_fail(self, job_id: str, failure_class: FailureClass, reason: str) -> RunResult:
        with self.sessions() as session:
            job = session.get(Job, job_id)
            attempts = job.attempts if job else self.settings.max_attempts
            if job is None or attempts >= job.max_attempts:
                return self._fail(job_id, failure_class, f"{reason} (after {attempts} attempts)")
            delay = backoff_s(attempts, self.settings.retry_backoff_s, self.settings.retry_backoff_max_s)
            machine.transition(
                session, job_id, Transition.RETRY_LATER, f"{reason}; retry in {delay:.1f} s", self.worker,
                failure_class=failure_class.value, failure_reason=reason, queued_at=utcnow(),
            )  # fmt: skip
        return RunResult(RunStatus.RETRY, delay, reason)

    def _retry_smaller(self, job_id: str, reason: str) -> RunResult:
        with self.sessions() as session:
            job = session.get(Job, job_id)
            if job is None or job.oom_retries >= 1:
                return self._fail(job_id, FailureClass.OUT_OF_MEMORY, f"{reason}, even with smaller segments")
            current = self._segment_seconds(job, parse_params(job.task, job.params))
            session.execute(delete(JobSegment).where(JobSegment.job_id == job_id))
            session.commit()
            machine.transition(
                session, job_id, Transition.RETRY_LATER, f"out of memory; retry with {current / 2:.0f} s segments",
                self.worker, failure_class=FailureClass.OUT_OF_MEMORY.value, failure_reason=reason,
                segment_seconds=current / 2, oom_retries=job.oom_retries + 1, segments_done=0,
                queued_at=utcnow(),
            )  # fmt: skip
        return RunResult(RunStatus.RETRY, 0.0, "out of memory")

    def _segment_seconds(self, job: Job, params: TaskParams) -> float:
        """The out-of-memory override first, then the job's parameter, then the service default."""
        return job.segment_seconds or params.segment_seconds or self.settings.segment_seconds

    # -- the work ---------------------------------------------------------------------------------
    def _local_input(self, job: Job, tmp: Path) -> Path:
        """A local path to the job's input: the file itself for local archive runs, else a downloaded copy."""
        if job.input_ref.startswith("file://"):
            path = Path(job.input_ref.removeprefix("file://"))
            if not path.is_file():
                raise MediaError(f"{path.name}: the source file is gone")
            return path
        dest = tmp / "input"
        self._fetch_input(job, dest)
        return dest

    def _fetch_input(self, job: Job, dest: Path) -> None:
        if job.input_ref.startswith("s3://"):
            bucket, key = parse_s3_uri(job.input_ref)
            with self.sessions() as session:  # checked at submit; checked again in case a grant was revoked since
                if not may_read(session, self.settings, job.tenant, bucket, key):
                    raise TaskInputError(f"{job.input_ref} is not readable by tenant {job.tenant}")
            self.storage.download(key, dest, bucket=bucket)
        else:
            self.storage.download(upload_key(job.tenant, job.input_ref.removeprefix("upload:")), dest)

    def _boundary(self, job_id: str, run: _Run) -> tuple[bool, bool]:
        """At every segment boundary and before anything final, one read of the job: whether this run still holds
        its lease (fencing), and whether a cancel was requested."""
        if run.lease.lost:
            return False, False
        query = select(Job.state, Job.worker, Job.attempts, Job.cancel_requested).where(Job.id == job_id)
        with self.sessions() as session:
            row = session.execute(query).one_or_none()
        if row is None:
            return False, False
        held = (row.state, row.worker, row.attempts) == (JobState.RUNNING.value, self.worker, run.attempt)
        return held, bool(row.cancel_requested)

    def _execute(self, job_id: str, run: _Run) -> RunResult:
        with self.sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None
            spec = get_task(job.task)
            params = parse_params(job.task, job.params)
            tenant = job.tenant
            segment_s = self._segment_seconds(job, params)
        with tempfile.TemporaryDirectory(prefix="omnimedia-") as tmp:
            local = self._local_input(job, Path(tmp))
            info = probe(local, self.settings.media_limits())
            check_media(spec, info.kind, info.has_audio)
            plan = plan_file(local, info, segment_s, self.settings.media_limits())
            with self.sessions() as session:
                session.execute(
                    update(Job)
                    .where(Job.id == job_id)
                    .values(segments_planned=len(plan), media_seconds=info.duration_s)
                )
                session.commit()
                done = {s.index for s in session.scalars(select(JobSegment).where(JobSegment.job_id == job_id))}
            for index, span in enumerate(plan):
                if index in done:
                    continue
                held, cancel = self._boundary(job_id, run)
                if not held:
                    return LEASE_LOST
                if cancel:
                    with self.sessions() as session:
                        if machine.transition(session, job_id, Transition.CANCEL_RUNNING, "canceled between segments"):
                            self._count_final(session, job_id)
                    return RunResult(RunStatus.CANCELED)
                self._run_segment(tenant, job_id, run, index, span, local, info, spec, params)
        if not self._boundary(job_id, run)[0]:
            return LEASE_LOST
        return self._finish(tenant, job_id, run, spec, info)

    def _run_segment(
        self,
        tenant: str,
        job_id: str,
        run: _Run,
        index: int,
        span: Span,
        local: Path,
        info: MediaInfo,
        spec: TaskSpec,
        params: TaskParams,
    ) -> None:
        media = load_segment(local, info, span, self.settings.media_limits())
        request = GenerationRequest(spec, params, media)
        self.engine.validate(request)
        started = time.perf_counter()
        result = self.engine.generate(request)
        if not isinstance(self.engine, BatchingEngine):  # the batcher reports its own batch sizes
            metrics.BATCH_SIZE.observe(1)
        elapsed = result.engine_seconds or (time.perf_counter() - started)
        audio_key = None
        if result.audio is not None:
            audio_key = output_key(tenant, job_id, f"speech/{index:05d}.wav", run.attempt)
            self.storage.put_bytes(audio_key, wav_bytes(result.audio), "audio/wav")
        with self.sessions() as session:
            session.add(
                JobSegment(
                    job_id=job_id, index=index, start_s=span.start, end_s=span.end, text=result.text,
                    reasoning=result.reasoning, audio_key=audio_key, engine_seconds=elapsed,
                )
            )  # fmt: skip
            try:
                session.commit()
            except IntegrityError:  # a concurrent delivery wrote this segment first: keep that one
                session.rollback()
                return
            count = session.scalar(select(func.count()).where(JobSegment.job_id == job_id))
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(segments_done=count, engine_seconds=Job.engine_seconds + elapsed, heartbeat_at=utcnow())
            )
            session.commit()

    def _finish(self, tenant: str, job_id: str, run: _Run, spec: TaskSpec, info: MediaInfo) -> RunResult:
        with self.sessions() as session:
            segments = list(
                session.scalars(select(JobSegment).where(JobSegment.job_id == job_id).order_by(JobSegment.index))
            )
        outputs, result = write_outputs(
            self.storage, tenant, job_id, run.attempt, spec, info, self.engine.variant, segments
        )
        with self.sessions() as session:
            applied = machine.transition(
                session, job_id, Transition.SUCCEED, "succeeded", self.worker,
                extra_where=and_(Job.worker == self.worker, Job.attempts == run.attempt), result=result,
                outputs=outputs,
                failure_class=None, failure_reason=None,
            )  # fmt: skip
            if applied:
                self._count_final(session, job_id)
        return RunResult(RunStatus.SUCCEEDED if applied else RunStatus.SKIPPED)


def run_until_settled(runner: JobRunner, job_id: str, sleep: bool = True) -> RunResult:
    """Run a job in this process, honouring retry delays, until it succeeds, fails or is canceled."""
    while True:
        result = runner.run(job_id)
        if result.status not in (RunStatus.RETRY, RunStatus.BUSY):
            return result
        if sleep:
            time.sleep(result.delay_s)


def build_runner(settings: Settings, worker: str) -> JobRunner:
    """The runner of a process: its engine from the one loader (batched across jobs when configured)."""
    engine = load_engine(settings.engine_config(), on_batch=metrics.BATCH_SIZE.observe)
    return JobRunner(settings, get_sessionmaker(), get_storage(), engine, worker=worker)
