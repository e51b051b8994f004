"""Hand a queued job to whoever runs jobs: Celery workers (by task name) or the embedded in-process worker."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache

from core.config import Settings, get_settings
from core.db import get_sessionmaker
from core.runner import JobRunner, RunResult, RunStatus
from core.storage import get_storage
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
