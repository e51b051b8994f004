"""The outbox: an event and its deliveries are written in the same transaction as the state change that causes
them, so a crash between the two cannot lose a callback. After the commit the deliveries are handed to whoever
sends them (Celery or the embedded sender); the sweeper re-sends any whose hand-off was lost."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from core import queue
from core.schema import WebhookDelivery, WebhookEndpoint, WebhookEvent, new_id, utcnow
from core.states import DeliveryState, EventType

log = logging.getLogger(__name__)


MAX_PAYLOAD_BYTES = 20_000
_PENDING = "omnimedia.webhook_deliveries"


def emit(
    session: Session,
    tenant: str,
    type_: EventType,
    data: dict[str, Any],
    urls: Sequence[str] = (),
    always: bool = False,
) -> WebhookEvent | None:
    """Write an event and one delivery per matching enabled endpoint and per extra URL (a job's webhook_url).
    With no receiver the event is not stored, unless `always` (events the tenant must be able to see)."""
    endpoints = [
        e
        for e in session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.tenant == tenant, WebhookEndpoint.enabled.is_(True))
        )
        if not e.event_types or type_.value in e.event_types
    ]
    if not endpoints and not urls and not always:
        return None
    now = utcnow()
    payload = {"type": type_.value, "timestamp": now.isoformat().replace("+00:00", "Z"), "data": data}
    if len(json.dumps(payload)) > MAX_PAYLOAD_BYTES:  # thin by construction; this only guards future fields
        payload["data"] = {key: data[key] for key in ("id", "object", "state") if key in data}
    record = WebhookEvent(
        id=f"msg_{uuid.uuid4().hex}", tenant=tenant, type=type_.value, payload=payload, created_at=now
    )
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
        id=new_id(),
        tenant=tenant,
        event_id=event_id,
        endpoint_id=endpoint_id,
        url=url,
        state=DeliveryState.PENDING,
        attempts=0,
        next_attempt_at=now,
        dispatched_at=now,
        created_at=now,
    )
    session.add(delivery)
    _hand_off_after_commit(session, delivery.id)
    return delivery


def _hand_off_after_commit(session: Session, delivery_id: str) -> None:
    """Remember the delivery on this session; once the session commits, hand it to the sender. The listeners
    are set on this session only, when it first writes a delivery."""
    if not event.contains(session, "after_commit", _hand_off):
        event.listen(session, "after_commit", _hand_off)
        event.listen(session, "after_rollback", _forget)
    session.info.setdefault(_PENDING, []).append(delivery_id)


def _hand_off(session: Session) -> None:
    ids = session.info.pop(_PENDING, None)
    if ids:
        try:
            queue.send_deliveries(ids)
        except Exception:  # the rows are committed: the sweeper sends them
            log.exception("could not hand off %d webhook deliveries; the sweeper will send them", len(ids))


def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)
