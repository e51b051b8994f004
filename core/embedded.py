"""The embedded default's in-process executor: one thread running jobs in submission order and one delivering
webhooks, in place of Celery workers. An entry point starts it (`start`) and the publisher, core.queue, routes
embedded-mode work to it."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from sqlalchemy import select

from core import queue
from core.config import Settings
from core.db import get_sessionmaker
from core.jobs.rows import TALKER_QUEUE
from core.jobs.runner import JobRunner, RunResult, build_runner, run_until_settled
from core.schema import Job, utcnow
from core.states import JobState
from core.webhooks.delivery import deliver, due_ids
from models.loader import unload_engine

log = logging.getLogger(__name__)


class EmbeddedWorker:
    """One background thread running jobs in submission order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="omnimedia-worker")
        self._runner: JobRunner | None = None
        self._lock = threading.Lock()

    def runner(self, speech: bool = False) -> JobRunner:
        """The process's runner (its engine loads on the first job). The first speech job, where speech is
        available, replaces the engine once by one with the talker, which serves every later job too."""
        with self._lock:
            if speech and self._runner is not None and not self._runner.pipeline.can_speak:
                unload_engine(self._runner.pipeline.engine)
                self._runner = None
            if self._runner is None:
                self._runner = build_runner(self.settings, "embedded", enable_talker=speech or None)
            return self._runner

    def _wants_speech(self, job_id: str) -> bool:
        if not self.settings.speech_available():
            return False
        with get_sessionmaker()() as session:
            return session.scalar(select(Job.queue).where(Job.id == job_id)) == TALKER_QUEUE

    def submit(self, job_id: str) -> Future[RunResult]:
        return self._pool.submit(self._run, job_id)

    def stop(self) -> None:
        """Drop jobs not yet started (they stay queued in the database for the next start); a running one ends."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, job_id: str) -> RunResult:
        try:
            return run_until_settled(self.runner(self._wants_speech(job_id)), job_id)
        except Exception:
            log.exception("embedded worker crashed on job %s", job_id)
            raise


class EmbeddedWebhookSender:
    """One background thread delivering due webhooks, woken by new deliveries and every sweep interval."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._sessions = get_sessionmaker()
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def wake(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="omnimedia-webhooks", daemon=True)
                self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.webhook_timeout_s + 5)

    def _loop(self) -> None:
        while not self._stopped:
            self._wake.wait(timeout=self.settings.webhook_sweep_every_s)
            self._wake.clear()
            if self._stopped:
                return
            try:
                self.deliver_due()
            except Exception:
                log.exception("embedded webhook sender")

    def deliver_due(self) -> None:
        with self._sessions() as session:
            for delivery_id in due_ids(session, utcnow()):
                deliver(session, delivery_id, self.settings)


class EmbeddedExecutor:
    """The job worker and the webhook sender of one embedded process."""

    def __init__(self, settings: Settings) -> None:
        self.worker = EmbeddedWorker(settings)
        self.webhooks = EmbeddedWebhookSender(settings)

    def run_job(self, job_id: str) -> None:
        self.worker.submit(job_id)

    def wake_webhooks(self) -> None:
        self.webhooks.wake()

    def resume(self) -> None:
        """Run what an earlier process left queued, and send the webhook retries it left due."""
        with get_sessionmaker()() as session:
            waiting = [JobState.QUEUED, JobState.RETRYING]
            pending = session.scalars(select(Job.id).where(Job.state.in_(waiting)).order_by(Job.created_at)).all()
            retries_due = bool(due_ids(session, utcnow(), limit=1))
        for job_id in pending:
            self.worker.submit(job_id)
        if retries_due:  # the sender's thread starts with the first delivery otherwise
            self.webhooks.wake()

    def stop(self) -> None:
        self.worker.stop()
        self.webhooks.stop()


def start(settings: Settings) -> EmbeddedExecutor:
    """Start this process's executor and route embedded-mode work to it."""
    executor = EmbeddedExecutor(settings)
    queue.use_in_process(executor)
    return executor


def stop(executor: EmbeddedExecutor) -> None:
    queue.use_in_process(None)
    executor.stop()
