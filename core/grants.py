"""Which objects a tenant may name as input. In the service bucket: only keys under its own `tenants/<name>/`
prefix. Another bucket: only where an operator granted it (`omnimedia buckets grant`), bucket and optional prefix.
Everything else does not exist for the tenant: callers answer the same 404 as for a missing object."""

from __future__ import annotations

import re

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.config import Settings
from core.schema import TenantBucket, utcnow
from core.storage.keys import tenant_prefix

BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def normalise_prefix(prefix: str) -> str:
    """ "tapes" and "/tapes/" both grant "tapes/": a grant never matches a sibling such as "tapes2/"."""
    prefix = prefix.strip().strip("/")
    return f"{prefix}/" if prefix else ""


def grant(session: Session, settings: Settings, tenant: str, bucket: str, prefix: str = "") -> TenantBucket:
    """Let `tenant` read `bucket` (under `prefix`). The service bucket cannot be granted: that would open every
    tenant's objects."""
    if not BUCKET_NAME.match(bucket):
        raise ValueError(f"{bucket!r} is not a valid S3 bucket name")
    if bucket == settings.s3_bucket:
        raise ValueError("the service bucket cannot be granted: each tenant already reads its own tenants/<name>/")
    row = TenantBucket(tenant=tenant, bucket=bucket, prefix=normalise_prefix(prefix), created_at=utcnow())
    session.merge(row)
    session.commit()
    return row


def revoke(session: Session, tenant: str, bucket: str, prefix: str = "") -> bool:
    match = (
        TenantBucket.tenant == tenant,
        TenantBucket.bucket == bucket,
        TenantBucket.prefix == normalise_prefix(prefix),
    )
    result = session.execute(delete(TenantBucket).where(*match))
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def grants(session: Session, tenant: str | None = None) -> list[TenantBucket]:
    query = select(TenantBucket).order_by(TenantBucket.tenant, TenantBucket.bucket, TenantBucket.prefix)
    if tenant is not None:
        query = query.where(TenantBucket.tenant == tenant)
    return list(session.scalars(query))


def may_read(session: Session, settings: Settings, tenant: str, bucket: str, key: str) -> bool:
    """Whether `tenant` may name s3://bucket/key (a key, or a prefix to list)."""
    if bucket == settings.s3_bucket:
        return key.startswith(tenant_prefix(tenant))
    prefixes = session.scalars(
        select(TenantBucket.prefix).where(TenantBucket.tenant == tenant, TenantBucket.bucket == bucket)
    )
    return any(key.startswith(prefix) for prefix in prefixes)
