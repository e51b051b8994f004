"""The one lookup of a tenant's object by id: another tenant's object does not exist for the caller."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.orm import Session

from core.schema import Base

T = TypeVar("T", bound=Base)


def get_owned(session: Session, model: type[T], object_id: str, tenant: str) -> T | None:
    """The row with this id if `tenant` owns it (the model has a `tenant` column); None for unknown, malformed or
    other tenants' ids alike."""
    row = session.get(model, object_id) if object_id.isalnum() else None
    return row if row is not None and getattr(row, "tenant", None) == tenant else None
