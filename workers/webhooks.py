"""Webhook delivery tasks, on the `webhooks` queue (CPU workers). Each takes a delivery id; state lives in the
database, so a duplicated or redelivered message makes no second attempt."""

from __future__ import annotations

from celery import Task

from core.celery_app import DELIVER_WEBHOOK, SWEEP_WEBHOOKS, app
from core.config import get_settings
from core.db import get_sessionmaker
from core.queue import send_deliveries
from core.webhooks.delivery import deliver
from core.webhooks.sweeper import sweep


@app.task(name=DELIVER_WEBHOOK, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def deliver_webhook(self: Task, delivery_id: str) -> str:
    settings = get_settings()
    with get_sessionmaker()() as session:
        outcome = deliver(session, delivery_id, settings)
    if outcome.retry_in_s is not None and outcome.retry_in_s <= settings.webhook_redispatch_s:
        send_deliveries([delivery_id], countdown=outcome.retry_in_s)  # later retries: the sweeper sends them when due
    return outcome.state.value if outcome.state else "skipped"


@app.task(name=SWEEP_WEBHOOKS, ignore_result=True)
def sweep_webhooks() -> int:
    with get_sessionmaker()() as session:
        return len(sweep(session, get_settings(), send_deliveries).sent)
