"""The outbox: an event and its deliveries are written in the same transaction as the state change that causes
them, so a crash between the two cannot lose a callback. After the commit the deliveries are handed to whoever
sends them (Celery or the embedded sender); the sweeper re-sends any whose hand-off was lost."""

from __future__ import annotations

import enum
import json
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from core.config import get_settings
from core.schema import (
    Batch,
    BatchItem,
    Job,
    JobState,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    new_id,
    utcnow,
)

log = logging.getLogger(__name__)


class EventType(str, enum.Enum):
    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_CANCELED = "job.canceled"
    BATCH_COMPLETED = "batch.completed"
    WEBHOOK_DISABLED = "webhook.disabled"  # an endpoint was turned off (410 Gone, or failing for days)


MAX_PAYLOAD_BYTES = 20_000
MAX_REASON_CHARS = 2_000
_PENDING = "omnimedia.webhook_deliveries"
FINAL_STATES = [s.value for s in JobState if s.final]


def public_path(path: str) -> str:
    base = get_settings().public_url
    return f"{base.rstrip('/')}{path}" if base else path


def emit(
    session: Session, tenant: str, type_: str, data: dict[str, Any], urls: Sequence[str] = (), always: bool = False
) -> WebhookEvent | None:
    """Write an event and one delivery per matching enabled endpoint and per extra URL (a job's webhook_url).
    With no receiver the event is not stored, unless `always` (events the tenant must be able to see)."""
    endpoints = [
        e
        for e in session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.tenant == tenant, WebhookEndpoint.enabled.is_(True))
        )
        if not e.event_types or type_ in e.event_types
    ]
    if not endpoints and not urls and not always:
        return None
    now = utcnow()
    payload = {"type": type_, "timestamp": now.isoformat().replace("+00:00", "Z"), "data": data}
    if len(json.dumps(payload)) > MAX_PAYLOAD_BYTES:  # thin by construction; this only guards future fields
        payload["data"] = {key: data[key] for key in ("id", "object", "state") if key in data}
    record = WebhookEvent(id=f"msg_{uuid.uuid4().hex}", tenant=tenant, type=type_, payload=payload, created_at=now)
    session.add(record)
    session.flush()  # the event row first: deliveries reference it
    targets: list[dict[str, Any]] = [{"endpoint_id": e.id} for e in endpoints] + [{"url": url} for url in urls]
    for target in targets:
        add_delivery(session, tenant, record.id, **target)
    return record


def add_delivery(
    session: Session, tenant: str, event_id: str, endpoint_id: str | None = None, url: str | None = None
) -> WebhookDelivery:
    """A delivery due now, handed to the sender once the session commits."""
    now = utcnow()
    delivery = WebhookDelivery(
        id=new_id(), tenant=tenant, event_id=event_id, endpoint_id=endpoint_id, url=url, state="pending",
        attempts=0, next_attempt_at=now, dispatched_at=now, created_at=now,
    )  # fmt: skip
    session.add(delivery)
    session.info.setdefault(_PENDING, []).append(delivery.id)
    return delivery


def job_data(job: Job) -> dict[str, Any]:
    data: dict[str, Any] = {"id": job.id, "object": "job", "task": job.task, "state": job.state}
    if job.state == JobState.SUCCEEDED.value:
        data["result_url"] = public_path(f"/v1/jobs/{job.id}/result")
    else:
        data["failure_class"] = job.failure_class
        data["failure_reason"] = (job.failure_reason or "")[:MAX_REASON_CHARS] or None
    return data


def job_finished(session: Session, job_id: str) -> None:
    """Called by the state machine inside the transaction that made the job final."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or not JobState(job.state).final:
        return
    emit(session, job.tenant, f"job.{job.state}", job_data(job), [job.webhook_url] if job.webhook_url else [])
    batch_id = session.scalar(select(BatchItem.batch_id).where(BatchItem.job_id == job_id).limit(1))
    if batch_id:
        complete_batch_if_done(session, batch_id)


def complete_batch_if_done(session: Session, batch_id: str) -> bool:
    """Mark a batch completed (and emit batch.completed) once all its jobs are final. The batch row is locked
    first, so of two jobs finishing at once the second sees the first and exactly one of them completes it."""
    batch = session.scalar(select(Batch).where(Batch.id == batch_id, Batch.completed_at.is_(None)).with_for_update())
    if batch is None:
        return False
    rows = session.execute(
        select(Job.state, func.count())
        .join(BatchItem, BatchItem.job_id == Job.id)
        .where(BatchItem.batch_id == batch_id)
        .group_by(Job.state)
    ).all()
    counts = {state: count for state, count in rows}
    if any(state not in FINAL_STATES for state in counts):
        return False
    batch.completed_at = utcnow()
    state = "canceled" if batch.cancel_requested else "completed"
    data = {
        "id": batch.id, "object": "batch", "state": state, "counts": counts, "invalid_lines": batch.invalid,
        "results_url": public_path(f"/v1/batches/{batch.id}/results"),
    }  # fmt: skip
    emit(session, batch.tenant, "batch.completed", data, [batch.webhook_url] if batch.webhook_url else [])
    return True


@event.listens_for(Session, "after_commit")
def _hand_off(session: Session) -> None:
    ids = session.info.pop(_PENDING, None)
    if ids:
        from core.dispatch import send_deliveries  # late: dispatch imports the runner, which imports this

        try:
            send_deliveries(ids)
        except Exception:  # the rows are committed: the sweeper sends them
            log.exception("could not hand off %d webhook deliveries; the sweeper will send them", len(ids))


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)
