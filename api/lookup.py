"""Load the caller's object by id, or answer 404: the one way routes look up a tenant's rows."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.orm import Session

from api.problems import Problem
from core.owned import get_owned
from core.schema import Base, Batch, Job, Speaker, Upload, WebhookDelivery, WebhookEndpoint

T = TypeVar("T", bound=Base)

# model -> (problem kind, title, noun in the detail)
NOT_FOUND: dict[type, tuple[str, str, str]] = {
    Job: ("job-not-found", "Job not found", "job"),
    Upload: ("upload-not-found", "Upload not found", "upload"),
    Batch: ("batch-not-found", "Batch not found", "batch"),
    WebhookEndpoint: ("webhook-not-found", "Webhook endpoint not found", "endpoint"),
    WebhookDelivery: ("delivery-not-found", "Delivery not found", "delivery"),
    Speaker: ("voice-not-found", "Voice not found", "enrolled voice"),
}


def load_owned(session: Session, model: type[T], object_id: str, tenant: str) -> T:
    """The row if the caller's tenant owns it; else the same 404 whether it exists for someone else or not."""
    row = get_owned(session, model, object_id, tenant)
    if row is None:
        kind, title, noun = NOT_FOUND[model]
        raise Problem(404, kind, title, f"no {noun} with id {object_id!r}")
    return row
