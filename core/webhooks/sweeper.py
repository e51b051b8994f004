"""The sweeper (Celery beat, every few seconds): sends deliveries that are due but whose message never went out
or was lost (retries beyond the countdown horizon, a broker outage at commit: within `webhook_handoff_grace_s`,
a worker killed mid-attempt)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from core.config import Settings
from core.schema import WebhookDelivery, utcnow
from core.states import DeliveryState
from core.webhooks.delivery import due_ids


@dataclass
class SweepReport:
    sent: list[str] = field(default_factory=list)
    released: int = 0


def sweep(session: Session, settings: Settings, send: Callable[[list[str]], None]) -> SweepReport:
    report = SweepReport()
    now = utcnow()
    released = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.state == DeliveryState.SENDING, WebhookDelivery.lease_until < now)
        .values(state=DeliveryState.PENDING, lease_until=None, next_attempt_at=now, dispatched_at=None)
        .execution_options(synchronize_session=False)
    )
    report.released = released.rowcount  # type: ignore[attr-defined]
    session.commit()
    ids = due_ids(
        session,
        now,
        dispatched_before=now - timedelta(seconds=settings.webhook_redispatch_s),
        first_dispatched_before=now - timedelta(seconds=settings.webhook_handoff_grace_s),
    )
    if ids:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(ids))
            .values(dispatched_at=now)
            .execution_options(synchronize_session=False)
        )
        session.commit()
        send(ids)
        report.sent = ids
    return report
