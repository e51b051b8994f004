"""The baseline: a raw Celery no-op task on the same Redis broker, same worker settings."""

from __future__ import annotations

import os

from celery import Celery

broker = os.environ.get("RAW_CELERY_BROKER", "redis://127.0.0.1:6379/10")
app = Celery("raw", broker=broker, backend=broker)
app.conf.update(
    task_acks_late=True, worker_prefetch_multiplier=1, task_default_queue="raw", broker_connection_retry_on_startup=True
)


@app.task(name="raw.noop")
def noop(i: int) -> int:
    return i
