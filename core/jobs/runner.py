"""Run one job by id: claim it, fetch its input, hand the file to the media pipeline (models.pipeline: plan once
per job, then segment by segment), commit each segment, write outputs, and settle the job.

Shared by the Celery task (workers/), the embedded in-process worker and archive runs; `build_runner` makes the
one runner (and engine) of a process. Failures are classified by type (core.jobs.failures): bad media and invalid
input fail at once; transient errors retry with backoff; out-of-memory retries once with smaller segments;
attempts are capped in the database.

Few transactions per job: the claim, one per segment but the last, and the success, which also writes the last
segment. Every write after the claim is conditional on this run still holding the job (worker and attempt)."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import and_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from core import metrics
from core.config import Settings
from core.db import get_sessionmaker
from core.jobs import machine, tracks
from core.jobs.described import described_copy
from core.jobs.failing import FailurePaths, RunResult, RunStatus
from core.jobs.failures import classify, public_reason
from core.jobs.inputs import local_input
from core.jobs.lease import Heartbeat
from core.jobs.machine import Transition
from core.jobs.outputs import DEFAULT_FORMATS, finished_result, write_outputs
from core.jobs.rows import add_jobs
from core.jobs.speakers import speakers_of
from core.jobs.work import InFlight, Segment, Work
from core.queue import enqueue
from core.schema import Job, JobSegment, utcnow
from core.states import FailureClass, JobState
from core.storage import Storage, get_storage
from core.storage.keys import output_key
from models.errors import EngineDown, MediaError
from models.pipeline import MediaPipeline, build_pipeline
from models.tasks import parse_params

log = logging.getLogger(__name__)


LEASE_LOST = RunResult(RunStatus.SKIPPED, reason="lease lost: another worker holds the job now")


@dataclass
class _Run:
    """One claimed run of a job: the row as claimed, its attempt (which scopes its output keys), its lease, and
    the segment length it planned with (a retry with smaller segments halves that)."""

    job: Job
    attempt: int
    lease: Heartbeat
    segment_s: float | None = None


class JobRunner(FailurePaths):
    """Executes jobs against one engine, one storage and one database."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        storage: Storage,
        pipeline: MediaPipeline,
        worker: str,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.storage = storage
        self.pipeline = pipeline  # a file's media work: models.pipeline
        self.worker = worker

    # -- entry point ------------------------------------------------------------------------------
    def run(self, job_id: str) -> RunResult:
        with self.sessions() as session:
            job = session.get(Job, job_id)
            if job is None:
                return RunResult(RunStatus.SKIPPED, reason="no such job")
            if job.state.final:
                return RunResult(RunStatus.SKIPPED, reason=f"job already {job.state}")
            if job.state != JobState.RUNNING and job.attempts >= job.max_attempts:
                machine.transition(
                    session,
                    job_id,
                    Transition.FAIL,
                    f"gave up after {job.attempts} attempts",
                    self.worker,
                    failure_class=job.failure_class or FailureClass.EXHAUSTED,
                    failure_reason=f"gave up after {job.attempts} attempts: {job.failure_reason or 'unknown error'}",
                )
                return RunResult(RunStatus.FAILED, reason="attempts exhausted")
            if not machine.start(session, job_id, self.worker, self.settings.lease_s, known=job):  # job is current
                if job.state == JobState.RUNNING:
                    return RunResult(RunStatus.BUSY, self.settings.lease_s, "held by a live worker")
                return RunResult(RunStatus.SKIPPED, reason=f"job is {job.state}")
            session.expunge(job)  # the claimed row (as the claim's UPDATE returned it) travels with the run
        if job.queued_at and job.started_at:
            metrics.QUEUE_WAIT.labels(job.task).observe((job.started_at - job.queued_at).total_seconds())
        with Heartbeat(self.sessions, job_id, self.worker, self.settings.lease_s) as lease:
            return self._run_claimed(_Run(job, job.attempts, lease))

    def _run_claimed(self, run: _Run) -> RunResult:
        job_id = run.job.id
        try:
            return self._execute(run)
        except (KeyboardInterrupt, SystemExit):
            raise
        except EngineDown as exc:  # not the job's fault: back to the queue, for a healthy worker
            log.error("job %s: %s; it goes back to the queue and this worker stops", job_id, exc.reason)
            with self.sessions() as session:
                machine.transition(  # nor does it count against the job's attempts
                    session,
                    job_id,
                    Transition.RETRY_LATER,
                    f"{exc.reason}; back to the queue",
                    queued_at=utcnow(),
                    attempts=Job.attempts - 1,
                )
            return RunResult(RunStatus.RETRY, 0.0, exc.reason, engine_down=True)
        except BaseException as exc:
            failure_class = classify(exc)
            reason = public_reason(failure_class, exc)
            if failure_class.retried:  # the tenant sees the class only; the detail is logged here
                log.error(
                    "job %s failed (%s): %s: %s",
                    job_id,
                    failure_class.value,
                    type(exc).__name__,
                    exc,
                    exc_info=failure_class is FailureClass.INTERNAL,
                )
            if failure_class.smaller:
                return self._retry_smaller(job_id, failure_class, reason, run.segment_s)
            if not failure_class.retried:
                return self._fail(job_id, failure_class, reason)
            return self._retry_or_fail(job_id, failure_class, reason)

    # -- the work ---------------------------------------------------------------------------------

    def _boundary(self, job_id: str, run: _Run) -> tuple[bool, bool]:
        """Between segments, one read of the job: whether this run still holds its lease (fencing), and whether a
        cancel was requested."""
        if run.lease.lost:
            return False, False
        query = select(Job.state, Job.worker, Job.attempts, Job.cancel_requested).where(Job.id == job_id)
        with self.sessions() as session:
            row = session.execute(query).one_or_none()
        if row is None:
            return False, False
        held = (row.state, row.worker, row.attempts) == (JobState.RUNNING, self.worker, run.attempt)
        return held, bool(row.cancel_requested)

    def _execute(self, run: _Run) -> RunResult:
        job = run.job
        if job.input_ref.startswith(tracks.SOURCE_PREFIX):  # a translated track of a finished transcript
            return tracks.run_track(self, job, run.attempt, self._held(run), lambda: self._boundary(job.id, run)[0])
        params = parse_params(job.task, job.params)
        with tempfile.TemporaryDirectory(prefix="omnimedia-") as tmp:
            local = local_input(job, Path(tmp), self.sessions, self.settings, self.storage)
            prepared = self.pipeline.prepare(local, job.task, job.params, self._segment_seconds(job, params), job.plan)
            with prepared.planning:  # a long file's scan runs beside the engine; stopped however this ends
                run.segment_s = prepared.segment_s
                work = Work(prepared, self._done_segments(job))
                stopped = self._work_through(run, work)
                if stopped is not None:
                    return stopped
            if run.lease.lost:
                return LEASE_LOST
            return self._finish(run, work, local)  # the input is at hand still (a described copy remuxes it)

    def _work_through(self, run: _Run, work: Work) -> RunResult | None:
        """Run the segments as planning settles them, up to the pipeline's `segments_in_flight` at once, and commit
        them in order (the last one is written with the success); a RunResult when the run must stop early."""
        prepared, finished = work.prepared, {s.index for s in work.done}
        in_flight = InFlight(self.pipeline, prepared)
        try:
            for settled in prepared.planning.settled():
                if settled.index in finished:
                    continue
                if work.committed:  # not before this run's first segment: the job was just claimed
                    held, cancel = self._boundary(run.job.id, run)
                    if not held:
                        return LEASE_LOST
                    if cancel:
                        return self._cancel(run.job.id)
                in_flight.start(settled)
                while (in_flight.full or in_flight.head_done) and not work.stopped:
                    if not self._settle(run, work, in_flight):
                        return LEASE_LOST
                if work.stopped:
                    return None
            while in_flight and not work.stopped:
                if not self._settle(run, work, in_flight):
                    return LEASE_LOST
            return None
        finally:
            in_flight.close()

    def _settle(self, run: _Run, work: Work, in_flight: InFlight) -> bool:
        """Commit the oldest segment in flight once it is done (where decoding stopped, the segments so far are the
        result: `work.stopped`); False when this run lost the job."""
        settled, future = in_flight.pop()
        try:
            out = future.result()
        except MediaError as exc:
            if not work.segments():
                raise
            work.warnings.append(f"decoding stopped at {settled.span.start:.1f} s: {exc.reason}")
            work.stopped = True
            return True
        segment = Segment.of_output(out)
        if settled.last:
            work.last, work.last_speech = segment, out.speech
            return True
        return self._commit_segment(run, work, segment, out.speech)

    def _done_segments(self, job: Job) -> list[Segment]:
        if not job.segments_done:
            return []
        with self.sessions() as session:
            return [Segment.of(row) for row in session.scalars(select(JobSegment).where(JobSegment.job_id == job.id))]

    def _cancel(self, job_id: str) -> RunResult:
        with self.sessions() as session:
            if machine.transition(session, job_id, Transition.CANCEL_RUNNING, "canceled between segments"):
                self._count_final(session, job_id)
        return RunResult(RunStatus.CANCELED)

    def _held(self, run: _Run) -> ColumnElement[bool]:
        return and_(
            Job.id == run.job.id, Job.state == JobState.RUNNING, Job.worker == self.worker, Job.attempts == run.attempt
        )

    def _commit_segment(self, run: _Run, work: Work, segment: Segment, speech: bytes | None) -> bool:
        """A finished segment, in one transaction with the job's progress (and its plan, the first time);
        False when this run no longer holds the job."""
        if speech is not None:
            key = output_key(run.job.tenant, run.job.id, f"speech/{segment.index:05d}.wav", run.attempt)
            self.storage.put_bytes(key, speech, "audio/wav")
            segment = replace(segment, audio_key=key)
        values: dict[str, object] = {
            "segments_done": Job.segments_done + 1,
            "segments_planned": work.planned,
            "engine_seconds": Job.engine_seconds + segment.engine_seconds,
            "heartbeat_at": utcnow(),
        }
        if run.job.plan is None or not run.job.plan.get("complete", True):  # the plan as it has grown
            values["plan"] = run.job.plan = work.prepared.plan_json()
        with self.sessions() as session:
            session.add(segment.row(run.job.id))
            try:
                changed = session.execute(update(Job).where(self._held(run)).values(**values))
                held = changed.rowcount == 1  # type: ignore[attr-defined]
                if not held:
                    session.rollback()
                    return False
                session.commit()
            except IntegrityError:  # an earlier delivery of this attempt wrote the segment first: keep that one
                session.rollback()
                return True
        work.committed.append(segment)
        run.lease.renewed()
        return True

    def _finish(self, run: _Run, work: Work, local: Path | None) -> RunResult:
        job, prepared = run.job, work.prepared
        segments = work.segments()
        with tempfile.TemporaryDirectory(prefix="omnimedia-voices-") as tmp:
            speakers = speakers_of(self.pipeline, prepared, segments, job, self.sessions, self.storage, Path(tmp))
        result = finished_result(self.pipeline, prepared, segments, work.warnings, speakers)
        duration = result["duration_s"]
        speech: list[bytes | str] = [s.audio_key for s in segments if s.audio_key]
        if work.last_speech is not None:
            speech.append(work.last_speech)
        formats = list(DEFAULT_FORMATS if job.formats is None else job.formats)
        if (formats or speech) and not self._boundary(job.id, run)[0]:
            return LEASE_LOST  # files are written before the success commits: a run that lost the job writes none
        outputs = write_outputs(self.storage, job.tenant, job.id, run.attempt, job.task, result, formats, speech)
        if getattr(prepared.params, "description_mix", False) and local is not None and "wav" in outputs:
            outputs["video"] = described_copy(self.storage, self.settings, job, run.attempt, local, outputs["wav"])
        values: dict[str, object] = {
            "result": result,
            "outputs": outputs,
            "failure_class": None,
            "failure_reason": None,
            "segments_done": len(segments),
            "segments_planned": len(segments),
            "media_seconds": duration,
        }
        if work.last is not None:
            values["engine_seconds"] = Job.engine_seconds + work.last.engine_seconds
        if job.plan is None or not job.plan.get("complete", True):
            values["plan"] = prepared.plan_json()
        children = tracks.track_jobs(self.settings, job, getattr(prepared.params, "subtitle_languages", []))
        if children:
            result["subtitle_tracks"] = {c.params["target_language"]: c.id for c in children}
        with self.sessions() as session:
            add_jobs(session, children)  # with the success, or not at all
            if work.last is not None:
                session.add(work.last.row(job.id))
            applied = machine.transition(
                session,
                job.id,
                Transition.SUCCEED,
                "succeeded",
                self.worker,
                extra_where=self._held(run),
                known=job,
                **values,
            )
        if applied:
            self._count(job.task, JobState.SUCCEEDED, sum(s.engine_seconds for s in segments), duration)
            for child in children:
                enqueue(child.id, child.queue, self.settings)
        return RunResult(RunStatus.SUCCEEDED) if applied else LEASE_LOST


def run_until_settled(runner: JobRunner, job_id: str, sleep: bool = True) -> RunResult:
    """Run a job in this process, honouring retry delays, until it succeeds, fails or is canceled."""
    while True:
        result = runner.run(job_id)
        if result.engine_down:  # in this process, nothing can run the job: say so rather than loop
            raise EngineDown(result.reason or "the engine is down")
        if result.status not in (RunStatus.RETRY, RunStatus.BUSY):
            return result
        if sleep:
            time.sleep(result.delay_s)


def build_runner(settings: Settings, worker: str, enable_talker: bool | None = None) -> JobRunner:
    """The runner of a process, over the process's media pipeline (its engine from the one loader, batched across
    jobs when configured, and the forced aligner when OMNIMEDIA_ALIGNER names one)."""
    config = settings.engine_config(enable_talker)
    pipeline = build_pipeline(config, settings.aligner, metrics.BATCH_SIZE.observe, settings.speaker_model)
    return JobRunner(settings, get_sessionmaker(), get_storage(), pipeline, worker=worker)
