"""Celery tasks: each takes a job id and calls core; state lives in the database, not here."""

from __future__ import annotations

import logging
import socket
from functools import lru_cache

from celery import Task
from celery.signals import worker_init

from core.celery_app import RECONCILE, RUN_JOB, app
from core.config import get_settings
from core.db import get_sessionmaker
from core.reconcile import reconcile as reconcile_once
from core.runner import TRANSIENT_ERRORS, JobRunner, RunStatus
from core.storage import get_storage
from models.engine import shared_engine

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


@lru_cache
def runner(worker: str) -> JobRunner:
    """One runner (and engine, loaded on first job) per worker process."""
    settings = get_settings()
    return JobRunner(
        settings, get_sessionmaker(), get_storage(), shared_engine(settings.engine_config()), worker=worker
    )


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
