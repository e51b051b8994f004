"""The Celery app object. It lives in core so the API enqueues by task name without importing workers/."""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from core.config import get_settings

RUN_JOB = "omnimedia.run_job"
RECONCILE = "omnimedia.reconcile"
DELIVER_WEBHOOK = "omnimedia.deliver_webhook"
SWEEP_WEBHOOKS = "omnimedia.sweep_webhooks"
WEBHOOK_QUEUE = "webhooks"  # served by CPU workers, never by a GPU worker
QUEUES = ("thinker", "talker", "maintenance", WEBHOOK_QUEUE)


def make_celery() -> Celery:
    settings = get_settings()
    tasks = ["workers.tasks", "workers.webhooks"]
    app = Celery("omnimedia", broker=settings.broker_url, backend=settings.result_backend, include=tasks)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        result_backend_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="thinker",
        task_routes={
            RECONCILE: {"queue": "maintenance"},
            DELIVER_WEBHOOK: {"queue": WEBHOOK_QUEUE},
            SWEEP_WEBHOOKS: {"queue": WEBHOOK_QUEUE},
        },
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_send_task_events=True,
        task_send_sent_event=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule={
            "reconcile-stuck-jobs": {"task": RECONCILE, "schedule": settings.reconcile_every_s},
            "sweep-webhooks": {
                "task": SWEEP_WEBHOOKS,
                "schedule": settings.webhook_sweep_every_s,
                "options": {"expires": settings.webhook_sweep_every_s},
            },
        },
    )
    return app


app = make_celery()
