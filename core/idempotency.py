"""Idempotency-Key handling: the first request with a key claims it (a row insert, so concurrent requests race
on the primary key and exactly one wins); the others wait for its resource and get the same one back. The same
key with a different body is refused. Keys live at least `idempotency_ttl_s` (24 h by default)."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.schema import IdempotencyKey, utcnow


class IdempotencyConflict(Exception):
    """The key was used with a different request body."""


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def claim(session: Session, tenant: str, key: str, digest: str, resource: str, ttl_s: float) -> str | None:
    """Claim a key. None: we own it, create the resource and call `complete`. A string: the existing resource id."""
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.tenant == tenant,
            IdempotencyKey.key == key,
            IdempotencyKey.created_at < utcnow() - timedelta(seconds=ttl_s),
        )
    )
    session.add(IdempotencyKey(tenant=tenant, key=key, request_sha256=digest, resource=resource, created_at=utcnow()))
    try:
        session.commit()
        return None
    except IntegrityError:
        session.rollback()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = session.get(IdempotencyKey, (tenant, key), populate_existing=True)
        if row is None:  # the owner failed and released the key: claim it again
            return claim(session, tenant, key, digest, resource, ttl_s)
        if row.request_sha256 != digest or row.resource != resource:
            raise IdempotencyConflict("this Idempotency-Key was already used with a different request")
        if row.resource_id:
            return row.resource_id
        session.rollback()
        time.sleep(0.05)
    raise TimeoutError("the first request with this Idempotency-Key is still running")


def complete(session: Session, tenant: str, key: str, resource_id: str) -> None:
    row = session.get(IdempotencyKey, (tenant, key))
    if row is not None:
        row.resource_id = resource_id
        session.commit()


def release(session: Session, tenant: str, key: str) -> None:
    """The owner's request failed validation: free the key so a corrected retry can use it."""
    session.rollback()
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.tenant == tenant, IdempotencyKey.key == key))
    session.commit()
