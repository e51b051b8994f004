"""The Celery app object. It lives in core so the API enqueues by task name without importing workers/."""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from core.config import get_settings

RUN_JOB = "omnimedia.run_job"
RECONCILE = "omnimedia.reconcile"
QUEUES = ("thinker", "talker", "maintenance")


def make_celery() -> Celery:
    settings = get_settings()
    app = Celery("omnimedia", broker=settings.broker_url, backend=settings.result_backend, include=["workers.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        result_backend_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="thinker",
        task_routes={RECONCILE: {"queue": "maintenance"}},
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_send_task_events=True,
        task_send_sent_event=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule={
            "reconcile-stuck-jobs": {"task": RECONCILE, "schedule": settings.reconcile_every_s},
        },
    )
    return app


app = make_celery()
