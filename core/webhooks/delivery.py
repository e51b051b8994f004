"""Delivering one webhook: claim it, re-check the target against SSRF at connect time, POST the signed event,
record the attempt and schedule the next one on the Standard Webhooks schedule.

Claims are conditional UPDATEs, so two copies of a delivery message (a Celery countdown and the sweeper, or a
redelivered task) make at most one attempt. The `webhook-id` is the event id: stable across retries and
replays, so receivers can drop duplicates."""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import metrics, outbound
from core.config import Settings
from core.netguard import Resolver, system_resolver
from core.outbound import Guard, OutboundError
from core.schema import (
    TenantWebhookSecret,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    as_utc,
    utcnow,
)
from core.states import DeliveryState, EventType
from core.webhooks import outbox
from core.webhooks.signing import active_secrets, signature_header

log = logging.getLogger(__name__)

USER_AGENT = "omnimedia-webhooks/1"
MAX_BODY_LOGGED = 1024
MAX_RETRY_AFTER_S = 86400.0  # a receiver cannot push a retry further out than a day
CLAIM_SLACK_S = 2.0  # a countdown may fire a little early against the database clock
resolve: Resolver = system_resolver  # tests swap this to play DNS rebinding


@dataclass(frozen=True)
class AttemptResult:
    status: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    body: str | None = None
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Outcome:
    """What happened to a delivery: `state` after the attempt (None: no attempt made) and, when pending, seconds
    to the next one."""

    state: DeliveryState | None = None
    retry_in_s: float | None = None


def claim(session: Session, delivery_id: str, settings: Settings, now: datetime) -> WebhookDelivery | None:
    lease = now + timedelta(seconds=settings.webhook_timeout_s + 30)
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.state == DeliveryState.PENDING,
            or_(
                WebhookDelivery.next_attempt_at.is_(None),
                WebhookDelivery.next_attempt_at <= now + timedelta(seconds=CLAIM_SLACK_S),
            ),
        )
        .values(state=DeliveryState.SENDING, lease_until=lease, attempts=WebhookDelivery.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(WebhookDelivery, delivery_id, populate_existing=True)


def deliver(session: Session, delivery_id: str, settings: Settings) -> Outcome:
    """Make one attempt of a due delivery (no-op if it is not due or someone else holds it)."""
    now = utcnow()
    delivery = claim(session, delivery_id, settings, now)
    if delivery is None:
        return Outcome()
    event = session.get(WebhookEvent, delivery.event_id)
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id) if delivery.endpoint_id else None
    if event is None or (delivery.endpoint_id and (endpoint is None or not endpoint.enabled)):
        reason = "the endpoint was disabled or deleted" if event else "the event is gone"
        _finish(session, delivery, DeliveryState.CANCELED, error=reason)
        return Outcome(DeliveryState.CANCELED)
    url, secrets = _target(session, delivery, endpoint, now)
    if not secrets:
        _finish(
            session, delivery, DeliveryState.FAILED, error="no signing secret: create one with POST /v1/webhooks/secret"
        )
        return Outcome(DeliveryState.FAILED)
    body = json.dumps(event.payload, separators=(",", ":"))
    msg_id = event.id
    session.commit()  # hold no transaction open while waiting on the network
    result = post(url, msg_id, body, secrets, settings)
    return record(session, delivery, endpoint, url, result, settings)


def _target(
    session: Session, delivery: WebhookDelivery, endpoint: WebhookEndpoint | None, now: datetime
) -> tuple[str, list[str]]:
    if endpoint is not None:
        return endpoint.url, active_secrets(endpoint, now)
    holder = session.get(TenantWebhookSecret, delivery.tenant)
    return delivery.url or "", active_secrets(holder, now) if holder else []


def post(url: str, msg_id: str, body: str, secrets: list[str], settings: Settings) -> AttemptResult:
    """POST the signed event through core.outbound: the address the guard approved, no redirects, no proxies, and
    one wall-clock deadline (webhook_timeout_s) for the whole attempt."""
    stamp = utcnow()
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": signature_header(secrets, msg_id, stamp, body),
    }
    guard = Guard(resolve, settings.webhook_ports, settings.webhook_loopback_ports)
    started = time.perf_counter()
    try:
        reply = outbound.request_blocking(
            "POST",
            url,
            guard,
            settings.webhook_timeout_s,
            MAX_BODY_LOGGED,
            headers=headers,
            content=body.encode(),
            refuse_encoded=False,
        )
    except OutboundError as exc:
        if exc.kind == "refused":
            return AttemptResult(error=exc.reason)
        if exc.kind == "timeout":
            return AttemptResult(latency_ms=_ms(started), error=f"timed out after {settings.webhook_timeout_s:g} s")
        return AttemptResult(latency_ms=_ms(started), error=exc.reason)
    status = reply.status
    retry_after = parse_retry_after(reply.headers.get("retry-after")) if status in (429, 503) else None
    error = None
    if not 200 <= status < 300:
        error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
    return AttemptResult(status, _ms(started), error, reply.head.decode("utf-8", "replace"), retry_after)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (as_utc(when) - utcnow()).total_seconds())


def next_delay(attempts_made: int, settings: Settings, retry_after_s: float | None = None) -> float | None:
    """Seconds before the next attempt, or None when the schedule is used up. schedule[i] precedes attempt i+1."""
    schedule = settings.webhook_retry_schedule_s
    if attempts_made >= len(schedule):
        return None
    delay = schedule[attempts_made] * (1 + random.uniform(0, settings.webhook_jitter))
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
    return delay


def record(
    session: Session,
    delivery: WebhookDelivery,
    endpoint: WebhookEndpoint | None,
    url: str,
    result: AttemptResult,
    settings: Settings,
) -> Outcome:
    """Store the attempt and move the delivery on: succeeded, pending (retry) or failed; disable a dead endpoint."""
    now = utcnow()
    next_at: datetime | None = None
    retry_in: float | None = None
    if result.ok:
        state = DeliveryState.SUCCEEDED
        if endpoint is not None:
            endpoint.failing_since = None
    elif result.status == 410:
        state = DeliveryState.FAILED
        if endpoint is not None:
            disable(session, endpoint, "the receiver answered 410 Gone")
    else:
        retry_in = next_delay(delivery.attempts, settings, result.retry_after_s)
        state = DeliveryState.FAILED if retry_in is None else DeliveryState.PENDING
        if endpoint is not None:
            endpoint.failing_since = endpoint.failing_since or now
            failing_for = (now - as_utc(endpoint.failing_since)).total_seconds()
            if failing_for >= settings.webhook_disable_after_s:
                disable(session, endpoint, f"every delivery failed for {failing_for / 86400:.1f} days")
                state, retry_in = DeliveryState.FAILED, None
        if retry_in is not None:
            next_at = now + timedelta(seconds=retry_in)
    session.add(
        WebhookAttempt(
            delivery_id=delivery.id,
            number=delivery.attempts,
            at=now,
            url=url,
            status_code=result.status,
            latency_ms=result.latency_ms,
            error=result.error,
            response_body=result.body,
            next_attempt_at=next_at,
        )
    )
    metrics.WEBHOOK_ATTEMPTS.labels(_result_label(result)).inc()
    if result.latency_ms is not None:
        metrics.WEBHOOK_SECONDS.observe(result.latency_ms / 1000)
    countdown = retry_in is not None and retry_in <= settings.webhook_redispatch_s
    try:
        _finish(session, delivery, state, result.status, result.error, next_at, dispatched=now if countdown else None)
    except IntegrityError:  # the endpoint (and with it this delivery) was deleted during the attempt
        session.rollback()
        log.info("webhook delivery %s vanished during its attempt (endpoint deleted)", delivery.id)
        return Outcome(DeliveryState.CANCELED)
    return Outcome(state, retry_in)


def _result_label(result: AttemptResult) -> str:
    if result.status is not None:
        return f"{result.status // 100}xx"
    return "refused" if (result.error or "").startswith("refused") else "error"


def _finish(
    session: Session,
    delivery: WebhookDelivery,
    state: DeliveryState,
    status: int | None = None,
    error: str | None = None,
    next_at: datetime | None = None,
    dispatched: datetime | None = None,
) -> None:
    values = {
        "state": state.value,
        "lease_until": None,
        "last_status": status,
        "last_error": error,
        "next_attempt_at": next_at,
    }
    if state is not DeliveryState.PENDING:
        values["finished_at"] = utcnow()
    if dispatched is not None:
        values["dispatched_at"] = dispatched
    session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery.id).values(**values))
    session.commit()


def disable(session: Session, endpoint: WebhookEndpoint, reason: str) -> None:
    """Turn an endpoint off and tell the tenant (an event listed under /v1/webhooks/events, sent to its other
    endpoints that subscribe to webhook.disabled)."""
    if not endpoint.enabled:
        return
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    endpoint.updated_at = utcnow()
    session.flush([endpoint])
    data = {"id": endpoint.id, "object": "webhook_endpoint", "url": endpoint.url, "reason": reason}
    outbox.emit(session, endpoint.tenant, EventType.WEBHOOK_DISABLED, data, always=True)
    log.warning("webhook endpoint %s of tenant %s disabled: %s", endpoint.id, endpoint.tenant, reason)


def due_ids(
    session: Session,
    now: datetime,
    limit: int = 500,
    dispatched_before: datetime | None = None,
    first_dispatched_before: datetime | None = None,
) -> list[str]:
    """Pending deliveries whose next attempt is due; for the sweeper, only those whose message looks lost: sent
    before `dispatched_before` (a retry rides a countdown up to that horizon), or, for a first attempt, which is
    claimed within seconds of its hand-off, sent before `first_dispatched_before`."""
    pending = WebhookDelivery.state == DeliveryState.PENDING
    query = select(WebhookDelivery.id).where(pending, WebhookDelivery.next_attempt_at <= now)
    if dispatched_before is not None:
        sent = WebhookDelivery.dispatched_at
        first = and_(WebhookDelivery.attempts == 0, sent < (first_dispatched_before or dispatched_before))
        query = query.where(or_(sent.is_(None), sent < dispatched_before, first))
    return list(session.scalars(query.order_by(WebhookDelivery.next_attempt_at).limit(limit)))
