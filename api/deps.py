"""Dependencies as typed aliases, so route signatures read like sentences."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.problems import Problem
from core.config import Settings, get_settings
from core.db import get_sessionmaker
from core.storage import Storage, get_storage


def _session() -> Iterator[Session]:
    with get_sessionmaker()() as session:
        yield session


SessionDep = Annotated[Session, Depends(_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StorageDep = Annotated[Storage, Depends(get_storage)]


def _tenant(request: Request) -> str:
    """The caller's tenant, settled from the headers by api.guard.CallerGuard before the body was read."""
    tenant = getattr(request.state, "tenant", None)
    if tenant is None:  # only reachable if a /v1 route were served without the guard
        raise Problem(401, "unauthorized", "API key required", "the caller could not be identified")
    return str(tenant)


TenantDep = Annotated[str, Depends(_tenant)]
