"""The Celery app object. It lives in core so the API enqueues by task name without importing workers/.

Its configuration is read from the settings when Celery first needs it (a publish, a worker start), not when this
module is imported: importing the API or the publisher configures nothing."""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue

from core.config import get_settings

RUN_JOB = "omnimedia.run_job"
RECONCILE = "omnimedia.reconcile"
DELIVER_WEBHOOK = "omnimedia.deliver_webhook"
SWEEP_WEBHOOKS = "omnimedia.sweep_webhooks"
WEBHOOK_QUEUE = "webhooks"  # served by CPU workers, never by a GPU worker
QUEUES = ("thinker", "talker", "maintenance", WEBHOOK_QUEUE)


def celery_config() -> dict[str, Any]:
    settings = get_settings()
    return dict(
        broker_url=settings.broker_url,
        result_backend=settings.result_backend,
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
        worker_send_task_events=True,  # Flower sees jobs from received on; a "task-sent" event per publish would
        task_send_sent_event=False,  # double every submit's broker writes (the history of record is Postgres)
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


app = Celery("omnimedia", include=["workers.tasks", "workers.webhooks"])
app.add_defaults(celery_config)  # evaluated lazily, on first use of app.conf
