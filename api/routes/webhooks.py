"""Webhooks: endpoints per tenant (CRUD, secret rotation), the signing secret for a job's webhook_url,
the delivery log with replay, and the event list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from api.deps import SessionDep, SettingsDep, TenantDep
from api.lookup import load_owned
from api.problems import PROBLEM_RESPONSES
from api.schemas import (
    WebhookAttemptOut,
    WebhookDeliveryOut,
    WebhookEndpointCreated,
    WebhookEndpointIn,
    WebhookEndpointOut,
    WebhookEndpointPatch,
    WebhookEventOut,
    WebhookSecretOut,
)
from core.schema import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from core.states import DeliveryState, EventType
from core.webhooks import endpoints

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=PROBLEM_RESPONSES)
Limit = Annotated[int, Query(ge=1, le=500)]


@router.post("", status_code=201, response_model=WebhookEndpointCreated)
def create_endpoint(
    body: WebhookEndpointIn, session: SessionDep, settings: SettingsDep, tenant: TenantDep
) -> WebhookEndpointCreated:
    """Register a receiver. The response holds its signing secret: it is not shown again (rotate to replace)."""
    endpoint = endpoints.create_endpoint(
        session, settings, tenant, body.url, [e.value for e in body.events], body.description
    )
    return WebhookEndpointCreated.model_validate(endpoint)


@router.get("", response_model=list[WebhookEndpointOut])
def list_endpoints(session: SessionDep, tenant: TenantDep) -> list[WebhookEndpointOut]:
    rows = session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.tenant == tenant).order_by(WebhookEndpoint.created_at)
    )
    return [WebhookEndpointOut.model_validate(e) for e in rows]


@router.post("/secret", status_code=201, response_model=WebhookSecretOut)
def rotate_tenant_secret(session: SessionDep, settings: SettingsDep, tenant: TenantDep) -> WebhookSecretOut:
    """Create, or rotate, the secret that signs calls to the webhook_url given on jobs and batches."""
    holder = endpoints.rotate_tenant_secret(session, settings, tenant)
    return WebhookSecretOut(secret=holder.secret, previous_secret_expires_at=holder.previous_expires_at)


@router.get("/deliveries", response_model=list[WebhookDeliveryOut])
def list_deliveries(
    session: SessionDep,
    tenant: TenantDep,
    endpoint_id: str | None = None,
    event_id: str | None = None,
    state: DeliveryState | None = None,
    limit: Limit = 100,
) -> list[WebhookDeliveryOut]:
    """Newest first, each with every attempt (status code, latency, error, next attempt)."""
    query = (
        select(WebhookDelivery, WebhookEvent.type)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.tenant == tenant)
    )
    if endpoint_id:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if event_id:
        query = query.where(WebhookDelivery.event_id == event_id)
    if state:
        query = query.where(WebhookDelivery.state == state.value)
    rows = session.execute(query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id).limit(limit)).all()
    attempts: dict[str, list[WebhookAttemptOut]] = {delivery.id: [] for delivery, _ in rows}
    for attempt in session.scalars(
        select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(attempts)).order_by(WebhookAttempt.id)
    ):
        attempts[attempt.delivery_id].append(WebhookAttemptOut.model_validate(attempt))
    return [_delivery_out(delivery, type_, attempts[delivery.id]) for delivery, type_ in rows]


def _delivery_out(delivery: WebhookDelivery, event_type: str, log: list[WebhookAttemptOut]) -> WebhookDeliveryOut:
    return WebhookDeliveryOut(
        id=delivery.id,
        event_id=delivery.event_id,
        event_type=event_type,
        endpoint_id=delivery.endpoint_id,
        url=delivery.url,
        state=delivery.state,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
        last_status=delivery.last_status,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        finished_at=delivery.finished_at,
        attempt_log=log,
    )


@router.post("/deliveries/{delivery_id}/replay", status_code=202, response_model=WebhookDeliveryOut)
def replay_delivery(
    delivery_id: str, session: SessionDep, settings: SettingsDep, tenant: TenantDep
) -> WebhookDeliveryOut:
    """Send the same event (same webhook-id) to the same receiver again, as a new delivery."""
    original = load_owned(session, WebhookDelivery, delivery_id, tenant)
    copy = endpoints.replay(session, settings, original)
    event = session.get(WebhookEvent, copy.event_id)
    return _delivery_out(copy, event.type if event else "", [])


@router.get("/events", response_model=list[WebhookEventOut])
def list_events(
    session: SessionDep, tenant: TenantDep, type: EventType | None = None, limit: Limit = 100
) -> list[WebhookEventOut]:
    """Events sent to this tenant's receivers, and notices such as webhook.disabled. Newest first."""
    query = select(WebhookEvent).where(WebhookEvent.tenant == tenant)
    if type:
        query = query.where(WebhookEvent.type == type.value)
    rows = session.scalars(query.order_by(WebhookEvent.created_at.desc()).limit(limit))
    return [WebhookEventOut.model_validate(e) for e in rows]


@router.get("/{endpoint_id}", response_model=WebhookEndpointOut)
def get_endpoint(endpoint_id: str, session: SessionDep, tenant: TenantDep) -> WebhookEndpointOut:
    return WebhookEndpointOut.model_validate(load_owned(session, WebhookEndpoint, endpoint_id, tenant))


@router.patch("/{endpoint_id}", response_model=WebhookEndpointOut)
def update_endpoint(
    endpoint_id: str, body: WebhookEndpointPatch, session: SessionDep, settings: SettingsDep, tenant: TenantDep
) -> WebhookEndpointOut:
    """Change the URL, the event filter or the description; enable a disabled endpoint again."""
    endpoint = load_owned(session, WebhookEndpoint, endpoint_id, tenant)
    events = [e.value for e in body.events] if body.events is not None else None
    endpoints.update_endpoint(session, settings, endpoint, body.url, events, body.description, body.enabled)
    return WebhookEndpointOut.model_validate(endpoint)


@router.delete("/{endpoint_id}", status_code=204)
def delete_endpoint(endpoint_id: str, session: SessionDep, tenant: TenantDep) -> Response:
    session.delete(load_owned(session, WebhookEndpoint, endpoint_id, tenant))
    session.commit()
    return Response(status_code=204)


@router.post("/{endpoint_id}/secret", status_code=201, response_model=WebhookSecretOut)
def rotate_endpoint_secret(
    endpoint_id: str, session: SessionDep, settings: SettingsDep, tenant: TenantDep
) -> WebhookSecretOut:
    """A new secret, shown once; the old one also signs (a second signature) until previous_secret_expires_at."""
    endpoint = load_owned(session, WebhookEndpoint, endpoint_id, tenant)
    secret = endpoints.rotate_endpoint_secret(session, settings, endpoint)
    return WebhookSecretOut(secret=secret, previous_secret_expires_at=endpoint.previous_expires_at)
