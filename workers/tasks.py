"""Celery tasks for jobs: each takes an id and calls core; state lives in the database, not here."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from functools import lru_cache
from pathlib import Path

from celery import Task
from celery.signals import worker_init

from core.celery_app import RECONCILE, RUN_JOB, app
from core.config import get_settings
from core.db import get_sessionmaker
from core.jobs.failures import TRANSIENT_ERRORS
from core.jobs.runner import JobRunner, RunStatus, build_runner
from core.maintenance import run_maintenance
from workers.main import ENGINE_DOWN_FILE, WORKER_PID

log = logging.getLogger(__name__)


@worker_init.connect
def _serve_metrics(**_: object) -> None:
    """Each worker node process serves /metrics for itself and its pool processes (multiprocess mode)."""
    port = get_settings().worker_metrics_port
    if port:
        from prometheus_client import CollectorRegistry, multiprocess, start_http_server

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        start_http_server(port, addr=get_settings().worker_metrics_host, registry=registry)


_RUNNER_LOCK = threading.Lock()


def runner(worker: str) -> JobRunner:
    """One runner (and engine, loaded on first job) per worker process, shared by its threads."""
    with _RUNNER_LOCK:
        return _cached_runner(worker)


@lru_cache
def _cached_runner(worker: str) -> JobRunner:
    return build_runner(get_settings(), worker)


@app.task(
    name=RUN_JOB,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=True,
    retry_jitter=True,
    max_retries=10,
)
def run_job(self: Task, job_id: str) -> str:
    result = runner(self.request.hostname or socket.gethostname()).run(job_id)
    if result.engine_down:
        stop_worker(result.reason or "the engine is down")
    if result.status in (RunStatus.RETRY, RunStatus.BUSY):
        raise self.retry(countdown=result.delay_s, max_retries=None)
    return result.status.value


def stop_worker(reason: str) -> None:
    """The engine cannot run jobs in this process: say why where workers.main will look, and ask the worker for a
    warm shutdown (the job is sent again for a healthy worker; workers.main then exits non-zero)."""
    marker, pid = os.environ.get(ENGINE_DOWN_FILE), os.environ.get(WORKER_PID)
    if marker:
        Path(marker).write_text(reason)
    if pid:
        os.kill(int(pid), signal.SIGTERM)


@app.task(name=RECONCILE)
def reconcile() -> dict[str, list[str]]:
    """Maintenance: requeue or fail stuck jobs, complete missed batches, purge expired keys and old events."""
    with get_sessionmaker()() as session:
        report = run_maintenance(session, get_settings())
    jobs = report.jobs
    if jobs.requeued or jobs.resent or jobs.failed:
        log.warning("reconciler: %s", jobs)
    return {"requeued": jobs.requeued, "resent": jobs.resent, "failed": jobs.failed}
