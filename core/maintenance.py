"""The periodic maintenance pass (Celery beat's `omnimedia.reconcile`): reconcile stuck jobs, complete batches
whose completion was missed, and purge expired Idempotency-Keys, old webhook events and abandoned presigned
uploads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from core import queue
from core.config import Settings
from core.health import record_maintenance
from core.jobs.finished import complete_missed_batches
from core.jobs.reconcile import ReconcileReport, reconcile_jobs
from core.schema import IdempotencyKey, WebhookEvent, utcnow
from core.storage import get_storage
from core.uploads import purge_abandoned


@dataclass
class MaintenanceReport:
    jobs: ReconcileReport
    batches_completed: list[str] = field(default_factory=list)
    idempotency_keys_purged: int = 0
    events_purged: int = 0
    abandoned_uploads_purged: int = 0


def purge_expired(session: Session, settings: Settings) -> tuple[int, int]:
    """Delete Idempotency-Keys past their lifetime and webhook events past retention (their deliveries and
    attempts go with them); return both counts."""
    no_sync = {"synchronize_session": False}  # rows loaded in this session need no in-Python matching
    expired = utcnow() - timedelta(seconds=settings.idempotency_ttl_s)
    keys = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < expired), execution_options=no_sync)
    old = utcnow() - timedelta(seconds=settings.webhook_retention_s)
    events = session.execute(delete(WebhookEvent).where(WebhookEvent.created_at < old), execution_options=no_sync)
    session.commit()
    return keys.rowcount, events.rowcount  # type: ignore[attr-defined]


def run_maintenance(
    session: Session, settings: Settings, send: Callable[[str, str], None] = queue.enqueue
) -> MaintenanceReport:
    broker_reset = settings.mode == "celery" and queue.broker_was_reset(settings)
    report = MaintenanceReport(reconcile_jobs(session, settings, send, broker_reset))
    if broker_reset:  # only once every waiting job was sent again: a pass that failed half-way is repeated
        queue.mark_broker(settings)
    report.batches_completed = complete_missed_batches(session)
    report.idempotency_keys_purged, report.events_purged = purge_expired(session, settings)
    report.abandoned_uploads_purged = purge_abandoned(session, get_storage(), settings)
    record_maintenance(settings)
    return report
