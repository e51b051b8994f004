"""Hand a queued job (or a webhook delivery) to whoever runs it: Celery workers, by task name, or the embedded
in-process worker and webhook sender."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache

from core.config import Settings, get_settings
from core.db import get_sessionmaker
from core.runner import JobRunner, RunResult, RunStatus
from core.schema import utcnow
from core.storage import get_storage
from core.webhooks.delivery import deliver, due_ids
from models.engine import shared_engine

log = logging.getLogger(__name__)


def enqueue(job_id: str, queue: str, settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    if settings.mode == "celery":
        from core.celery_app import RUN_JOB, app

        try:
            app.send_task(RUN_JOB, args=[job_id], queue=queue, retry=True, retry_policy={"max_retries": 3})
        except Exception:  # the job row exists and stays queued: the reconciler publishes it again
            log.exception("could not publish job %s; the reconciler will re-send it", job_id)
    else:
        embedded_worker().submit(job_id)


def send_deliveries(delivery_ids: list[str], countdown: float | None = None) -> None:
    """Hand deliveries to the sender: after the commit that wrote them (the outbox), for a retry soon, or from the
    sweeper. In embedded mode the in-process sender picks up whatever is due."""
    if get_settings().mode == "celery":
        from core.celery_app import DELIVER_WEBHOOK, WEBHOOK_QUEUE, app

        for delivery_id in delivery_ids:
            app.send_task(DELIVER_WEBHOOK, args=[delivery_id], queue=WEBHOOK_QUEUE, countdown=countdown or None,
                          retry=True, retry_policy={"max_retries": 2})  # fmt: skip
    else:
        embedded_webhooks().wake()


def run_until_settled(runner: JobRunner, job_id: str, sleep: bool = True) -> RunResult:
    """Run a job in this process, honouring retry delays, until it succeeds, fails or is canceled."""
    while True:
        result = runner.run(job_id)
        if result.status not in (RunStatus.RETRY, RunStatus.BUSY):
            return result
        if sleep:
            time.sleep(result.delay_s)


class EmbeddedWorker:
    """One background thread running jobs in submission order: the no-server default."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="omnimedia-worker")
        self._runner: JobRunner | None = None
        self._lock = threading.Lock()

    def runner(self) -> JobRunner:
        with self._lock:
            if self._runner is None:
                self._runner = JobRunner(
                    self.settings,
                    get_sessionmaker(),
                    get_storage(),
                    shared_engine(self.settings.engine_config()),
                    worker="embedded",
                )
            return self._runner

    def submit(self, job_id: str) -> Future[RunResult]:
        return self._pool.submit(self._run, job_id)

    def _run(self, job_id: str) -> RunResult:
        try:
            return run_until_settled(self.runner(), job_id)
        except Exception:
            log.exception("embedded worker crashed on job %s", job_id)
            raise


@lru_cache
def embedded_worker() -> EmbeddedWorker:
    return EmbeddedWorker(get_settings())


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


@lru_cache
def embedded_webhooks() -> EmbeddedWebhookSender:
    return EmbeddedWebhookSender(get_settings())
