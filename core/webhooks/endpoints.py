"""Managing a tenant's webhook endpoints and signing secrets, checking targets, and replaying deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import Settings
from core.errors import Refusal, Refused
from core.netguard import UnsafeURL, check_url
from core.schema import TenantWebhookSecret, WebhookDelivery, WebhookEndpoint, WebhookEvent, as_utc, utcnow
from core.webhooks import delivery as delivery_module
from core.webhooks.outbox import add_delivery
from core.webhooks.signing import new_secret, rotate

MAX_ENDPOINTS_PER_TENANT = 50
REPLAY_WINDOW = timedelta(hours=1)


class WebhookError(Refused):
    """A webhook request that cannot be honoured."""

    title = "Webhook request refused"


def check_target(url: str, settings: Settings) -> str:
    """Refuse a URL the service must not call (SSRF guard); it is checked again at each connect."""
    url = url.strip()
    try:
        check_url(url, delivery_module.resolve, settings.webhook_ports, settings.webhook_loopback_ports)
    except UnsafeURL as exc:
        raise WebhookError(Refusal.INVALID_WEBHOOK_URL, f"webhook URL refused: {exc.reason}") from exc
    return url


def create_endpoint(
    session: Session, settings: Settings, tenant: str, url: str, event_types: Sequence[str], description: str | None
) -> WebhookEndpoint:
    """Register an endpoint; its secret is on the returned row (show it once)."""
    count = session.query(WebhookEndpoint).filter(WebhookEndpoint.tenant == tenant).count()
    if count >= MAX_ENDPOINTS_PER_TENANT:
        raise WebhookError(Refusal.TOO_MANY_ENDPOINTS, f"a tenant has at most {MAX_ENDPOINTS_PER_TENANT} endpoints")
    now = utcnow()
    endpoint = WebhookEndpoint(
        tenant=tenant,
        url=check_target(url, settings),
        event_types=sorted(set(event_types)),
        description=description,
        enabled=True,
        secret=new_secret(),
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    session.commit()
    return endpoint


def update_endpoint(
    session: Session,
    settings: Settings,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> WebhookEndpoint:
    if url is not None:
        endpoint.url = check_target(url, settings)
    if event_types is not None:
        endpoint.event_types = sorted(set(event_types))
    if description is not None:
        endpoint.description = description
    if enabled is not None and enabled != endpoint.enabled:
        endpoint.enabled = enabled
        endpoint.disabled_reason = None if enabled else "disabled by the tenant"
        endpoint.failing_since = None
    endpoint.updated_at = utcnow()
    session.commit()
    return endpoint


def rotate_endpoint_secret(session: Session, settings: Settings, endpoint: WebhookEndpoint) -> str:
    secret = rotate(endpoint, settings.webhook_secret_grace_s)
    endpoint.updated_at = utcnow()
    session.commit()
    return secret


def rotate_tenant_secret(session: Session, settings: Settings, tenant: str) -> TenantWebhookSecret:
    """Create (or rotate) the secret that signs deliveries to the webhook_url of jobs and batches."""
    holder = session.get(TenantWebhookSecret, tenant)
    if holder is None:
        holder = TenantWebhookSecret(tenant=tenant, secret=new_secret(), created_at=utcnow())
        session.add(holder)
    else:
        rotate(holder, settings.webhook_secret_grace_s)
    session.commit()
    return holder


def check_job_webhook(session: Session, settings: Settings, tenant: str, url: str) -> str:
    """A job's or batch's webhook_url: a safe target, and a tenant secret to sign with."""
    url = check_target(url, settings)
    if session.get(TenantWebhookSecret, tenant) is None:
        raise WebhookError(
            Refusal.WEBHOOK_SECRET_MISSING,
            "create the signing secret for webhook_url first: POST /v1/webhooks/secret (it is shown once)",
        )
    return url


def replay(session: Session, settings: Settings, original: WebhookDelivery) -> WebhookDelivery:
    """Send the same event (same webhook-id) to the same target again, as a new delivery. Replays are
    rate-limited per tenant, to registered endpoints and to jobs' and batches' own webhook_url alike."""
    _check_replay_rate(session, settings, original.tenant)
    if original.endpoint_id:
        endpoint = session.get(WebhookEndpoint, original.endpoint_id)
        if endpoint is None or not endpoint.enabled:
            raise WebhookError(Refusal.ENDPOINT_DISABLED, "the endpoint is disabled; enable it before replaying")
    if session.get(WebhookEvent, original.event_id) is None:
        raise WebhookError(Refusal.EVENT_EXPIRED, "the event has expired")
    copy = add_delivery(session, original.tenant, original.event_id, original.endpoint_id, original.url)
    session.commit()
    return copy


def _check_replay_rate(session: Session, settings: Settings, tenant: str) -> None:
    """A replay is a delivery made later than its event (originals are written with it); count the tenant's replays
    in the last hour."""
    now = utcnow()
    rows = session.execute(
        select(WebhookDelivery.created_at, WebhookEvent.created_at)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(
            WebhookDelivery.tenant == tenant,
            WebhookDelivery.created_at >= now - REPLAY_WINDOW,
        )
    ).all()
    replays = sorted(as_utc(made) for made, event in rows if as_utc(made) - as_utc(event) > timedelta(seconds=1))
    if len(replays) >= settings.webhook_replays_per_hour:
        wait_s = (replays[0] + REPLAY_WINDOW - now).total_seconds()
        raise WebhookError(
            Refusal.REPLAY_RATE_LIMITED,
            f"at most {settings.webhook_replays_per_hour} replays an hour",
            retry_after_s=max(1, int(wait_s) + 1),
        )
