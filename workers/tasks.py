"""Celery tasks: each takes a job id and calls core; state lives in the database, not here."""

from __future__ import annotations

import logging
import socket
import threading
from functools import lru_cache

from celery import Task
from celery.signals import worker_init

from core import metrics
from core.celery_app import RECONCILE, RUN_JOB, app
from core.config import get_settings
from core.db import get_sessionmaker
from core.reconcile import reconcile as reconcile_once
from core.runner import TRANSIENT_ERRORS, JobRunner, RunStatus
from core.storage import get_storage
from models.batcher import BatchingEngine
from models.engine import Engine, shared_engine

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
        return _make_runner(worker)


@lru_cache
def _make_runner(worker: str) -> JobRunner:
    settings = get_settings()
    engine: Engine = shared_engine(settings.engine_config())
    if settings.batch_max_wait_ms > 0 and settings.backend == "transformers":  # vLLM batches continuously itself
        engine = BatchingEngine(engine, settings.max_batch_size, settings.batch_max_wait_ms, metrics.BATCH_SIZE.observe)
    return JobRunner(settings, get_sessionmaker(), get_storage(), engine, worker=worker)


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
    if result.status in (RunStatus.RETRY, RunStatus.BUSY):
        raise self.retry(countdown=result.delay_s, max_retries=None)
    return result.status.value


@app.task(name=RECONCILE)
def reconcile() -> dict[str, list[str]]:
    def send(job_id: str, queue: str) -> None:
        app.send_task(RUN_JOB, args=[job_id], queue=queue)

    with get_sessionmaker()() as session:
        report = reconcile_once(session, get_settings(), send)
    if report.requeued or report.resent or report.failed:
        log.warning("reconciler: %s", report)
    return {"requeued": report.requeued, "resent": report.resent, "failed": report.failed}
