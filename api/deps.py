"""Dependencies as typed aliases, so route signatures read like sentences."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.problems import Problem
from core.config import Settings, get_settings
from core.db import get_sessionmaker
from core.keys import tenant_for_token
from core.schema import LOCAL_TENANT
from core.storage import Storage, get_storage


def _session() -> Iterator[Session]:
    with get_sessionmaker()() as session:
        yield session


SessionDep = Annotated[Session, Depends(_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StorageDep = Annotated[Storage, Depends(get_storage)]


def _tenant(request: Request, session: SessionDep, settings: SettingsDep) -> str:
    """The caller's tenant from `Authorization: Bearer <key>`; anonymous callers are tenant "local" where allowed."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        tenant = tenant_for_token(session, header[7:])
        if tenant is None:
            raise _unauthorized("the API key is not valid or was revoked")
        return tenant
    if settings.anonymous_allowed():
        return LOCAL_TENANT
    raise _unauthorized("send Authorization: Bearer <API key> (create one with `omnimedia keys create`)")


def _unauthorized(detail: str) -> Problem:
    problem = Problem(401, "unauthorized", "API key required", detail)
    problem.headers["WWW-Authenticate"] = "Bearer"
    return problem


TenantDep = Annotated[str, Depends(_tenant)]
