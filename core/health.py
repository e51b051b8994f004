"""What is alive and what is waiting, for operators: per queue its live consumers (Celery's own broadcast), its
depth in the broker, and its oldest queued job; the webhook backlog; when the maintenance pass last ran. Answers
"this queue has no consumer" and "webhooks are piling up" without Flower, whose state is in memory only."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import metrics
from core.celery_app import QUEUES, app
from core.config import Settings
from core.schema import Job, WebhookDelivery, as_utc, utcnow
from core.states import DeliveryState, JobState

MAINTENANCE_MARKER = "omnimedia:maintenance-at"  # set by each maintenance pass, read here
BROADCAST_TIMEOUT_S = 1.0  # workers answer from their main process, even mid-job


@dataclass
class QueueHealth:
    consumers: int | None  # None: the broker could not be asked
    depth: int | None
    oldest_queued_s: float | None


@dataclass
class Health:
    mode: str
    queues: dict[str, QueueHealth] = field(default_factory=dict)
    webhooks_pending: int = 0
    webhooks_oldest_due_s: float | None = None
    maintenance_age_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _age(moment: datetime | None, now: datetime) -> float | None:
    return round((now - as_utc(moment)).total_seconds(), 3) if moment else None


def _consumers() -> dict[str, int] | None:
    try:
        replies = app.control.inspect(timeout=BROADCAST_TIMEOUT_S).active_queues() or {}
    except Exception:  # broker unreachable: unknown, not zero
        return None
    counts: dict[str, int] = {}
    for queues in replies.values():
        for queue in queues:
            counts[queue["name"]] = counts.get(queue["name"], 0) + 1
    return counts


def _broker(settings: Settings) -> redis.Redis | None:
    if settings.mode != "celery" or not settings.broker_url.startswith(("redis://", "rediss://")):
        return None
    return redis.Redis.from_url(settings.broker_url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True)


def record_maintenance(settings: Settings) -> None:
    """Called at the end of each maintenance pass."""
    client = _broker(settings)
    if client is None:
        return
    try:
        client.set(MAINTENANCE_MARKER, utcnow().isoformat())
    except redis.RedisError:
        pass  # the next pass records it
    finally:
        client.close()


def service_health(session: Session, settings: Settings) -> Health:
    now = utcnow()
    report = Health(settings.mode)
    waiting = dict(
        session.execute(
            select(Job.queue, func.min(Job.queued_at)).where(Job.state == JobState.QUEUED).group_by(Job.queue)
        ).all()
    )
    client = _broker(settings)
    consumers = _consumers() if client is not None else None
    for name in QUEUES:
        depth = None
        if client is not None:
            try:
                depth = int(client.llen(name))  # kombu's Redis transport keeps a queue as a list of that name
            except redis.RedisError:
                depth = None
        count = None if consumers is None else consumers.get(name, 0)
        report.queues[name] = QueueHealth(count, depth, _age(waiting.get(name), now))
    pending = (WebhookDelivery.state == DeliveryState.PENDING, WebhookDelivery.next_attempt_at <= now)
    report.webhooks_pending, oldest = session.execute(
        select(func.count(), func.min(WebhookDelivery.next_attempt_at)).where(*pending)
    ).one()
    report.webhooks_oldest_due_s = _age(oldest, now)
    if client is not None:
        try:
            stamp = client.get(MAINTENANCE_MARKER)
            report.maintenance_age_s = _age(datetime.fromisoformat(str(stamp)), now) if stamp else None
        except redis.RedisError:
            report.maintenance_age_s = None
        finally:
            client.close()
    return report


def publish_gauges(report: Health) -> None:
    """Set the Prometheus gauges from a report (the API does it on each scrape of /metrics)."""
    for name, queue in report.queues.items():
        metrics.QUEUE_CONSUMERS.labels(name).set(-1 if queue.consumers is None else queue.consumers)
        metrics.QUEUE_DEPTH.labels(name).set(queue.depth or 0)
        metrics.QUEUE_OLDEST_SECONDS.labels(name).set(queue.oldest_queued_s or 0.0)
    metrics.WEBHOOKS_PENDING.set(report.webhooks_pending)
    metrics.MAINTENANCE_AGE_SECONDS.set(-1 if report.maintenance_age_s is None else report.maintenance_age_s)
