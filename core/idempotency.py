"""Idempotency-Key handling: the key is written in the same transaction as the resource it names, so a crash or
an error can never leave a key claimed without its resource, or a resource without its key.

A request whose key names an earlier resource with the same body gets that resource; with another body, a 422.
Two concurrent requests with one key both try; the database keeps exactly one (the key's primary key), and the
other rolls back everything it wrote and answers with the winner's resource. Keys live `idempotency_ttl_s`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import Refusal, Refused
from core.schema import IdempotencyKey, as_utc, utcnow


class IdempotencyConflict(Refused):
    """The key was used with a different request body."""

    title = "Idempotency-Key reused with another body"


def find(session: Session, tenant: str, key: str, digest: str, resource: str, ttl_s: float) -> str | None:
    """The id of the resource an earlier request with this key created, or None (a key past its lifetime is
    forgotten). Raises IdempotencyConflict when the earlier request had another body."""
    row = session.get(IdempotencyKey, (tenant, key), populate_existing=True)
    if row is not None and as_utc(row.created_at) < utcnow() - timedelta(seconds=ttl_s):
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.tenant == tenant, IdempotencyKey.key == key))
        return None
    if row is None:
        return None
    if row.request_sha256 != digest or row.resource != resource:
        raise IdempotencyConflict(
            Refusal.IDEMPOTENCY_KEY_REUSED, "this Idempotency-Key was already used with a different request"
        )
    return row.resource_id


def idempotent_job(session: Session, tenant: str, key: str) -> str | None:
    """The id of the job a POST /v1/jobs with this key created (None: no such key, or it named a batch)."""
    row = session.get(IdempotencyKey, (tenant, key))
    return row.resource_id if row is not None and row.resource == "jobs" else None


def create_once(
    session: Session,
    tenant: str,
    key: str | None,
    request: bytes,
    resource: str,
    ttl_s: float,
    create: Callable[[], str],
) -> tuple[str, bool]:
    """Run `create` (it adds the resource to the session, uncommitted, and returns its id) and commit it, with the
    Idempotency-Key when there is one; or return the resource the key already names for this `request` (its body).
    Returns (resource id, whether this call created it)."""
    if key is None:
        resource_id = create()
        session.commit()
        return resource_id, True
    digest = hashlib.sha256(request).hexdigest()
    existing = find(session, tenant, key, digest, resource, ttl_s)
    if existing is not None:
        return existing, False
    resource_id = create()
    session.add(
        IdempotencyKey(
            tenant=tenant,
            key=key,
            request_sha256=digest,
            resource=resource,
            resource_id=resource_id,
            created_at=utcnow(),
        )
    )
    try:
        session.commit()
    except IntegrityError:  # a concurrent request with this key committed first: ours is undone, answer with its
        session.rollback()
        existing = find(session, tenant, key, digest, resource, ttl_s)
        if existing is None:
            raise
        return existing, False
    return resource_id, True
