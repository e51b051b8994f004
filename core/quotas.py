"""Per-tenant limits: active jobs (429), bytes per upload and bytes stored (413). Defaults come from Settings;
a row in tenant_quotas overrides them for one tenant (`omnimedia quotas set`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from core.config import Settings
from core.errors import Refusal, Refused
from core.jobs import active
from core.schema import TenantQuota, Upload, utcnow

ACTIVE_JOBS_RETRY_AFTER_S = 30


class QuotaExceeded(Refused):
    """Over a tenant limit: too many active jobs (waiting helps) or too many bytes (it does not)."""

    title = "Over the tenant's quota"


@dataclass(frozen=True)
class Limits:
    max_active_jobs: int
    max_upload_bytes: int
    max_storage_bytes: int  # 0: no limit


def limits_for(session: Session, settings: Settings, tenant: str) -> Limits:
    row = session.get(TenantQuota, tenant) or TenantQuota(tenant=tenant)

    def pick(override: int | None, default: int) -> int:
        return default if override is None else override

    return Limits(
        max_active_jobs=pick(row.max_active_jobs, settings.tenant_max_active_jobs),
        max_upload_bytes=pick(row.max_upload_bytes, settings.max_upload_bytes),
        max_storage_bytes=pick(row.max_storage_bytes, settings.tenant_max_storage_bytes),
    )


def set_limits(
    session: Session,
    tenant: str,
    max_active_jobs: int | None = None,
    max_upload_bytes: int | None = None,
    max_storage_bytes: int | None = None,
) -> TenantQuota:
    row = session.get(TenantQuota, tenant) or TenantQuota(tenant=tenant)
    row.max_active_jobs = max_active_jobs
    row.max_upload_bytes = max_upload_bytes
    row.max_storage_bytes = max_storage_bytes
    row.updated_at = utcnow()
    session.add(row)
    session.commit()
    return row


def _lock_tenant(session: Session, tenant: str, purpose: str) -> None:
    """Serialise a tenant's check-then-commit on Postgres until the transaction ends (SQLite serialises writers)."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"{purpose}:{tenant}".encode()).digest()[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def enforce_active_jobs(session: Session, settings: Settings, tenant: str) -> None:
    """Refuse the transaction's new jobs when they take the tenant past its limit of active (queued, running,
    retrying) jobs. Call it last, after the jobs are inserted and just before the commit: one conditional update
    of the tenant's counter (core.jobs.active), whose row stays locked only until the commit, so a tenant's
    submissions validate inputs, look at storage and check webhooks in parallel, and racing submits still
    cannot both squeeze in."""
    over = active.reserve(session, tenant, settings.tenant_max_active_jobs)
    if over is not None:
        limit = limits_for(session, settings, tenant).max_active_jobs
        raise QuotaExceeded(
            Refusal.QUOTA_EXCEEDED,
            f"tenant {tenant} would have {over} active jobs with this request; the limit is {limit}",
            retry_after_s=ACTIVE_JOBS_RETRY_AFTER_S,
        )


def stored_bytes(session: Session, tenant: str) -> int:
    """Bytes of the tenant's uploads, presigned ones not yet confirmed included (at the size they declared)."""
    total = session.scalar(select(func.coalesce(func.sum(Upload.size_bytes), 0)).where(Upload.tenant == tenant))
    return int(total or 0)


def upload_limit(session: Session, settings: Settings, tenant: str) -> tuple[int, str]:
    """The most bytes the tenant's next upload may have, and why (per-upload limit or storage left)."""
    limits = limits_for(session, settings, tenant)
    if not limits.max_storage_bytes:
        return limits.max_upload_bytes, f"the upload limit is {limits.max_upload_bytes} bytes"
    left = limits.max_storage_bytes - stored_bytes(session, tenant)
    if left <= 0:
        raise QuotaExceeded(
            Refusal.STORAGE_QUOTA_EXCEEDED, f"tenant {tenant} has used its {limits.max_storage_bytes} bytes of storage"
        )
    if left < limits.max_upload_bytes:
        return left, f"tenant {tenant} has {left} bytes of storage left (of {limits.max_storage_bytes})"
    return limits.max_upload_bytes, f"the upload limit is {limits.max_upload_bytes} bytes"


def reserve_storage(session: Session, settings: Settings, tenant: str, size: int) -> None:
    """Check that `size` more bytes fit the tenant's storage quota, in the transaction that records them: the
    tenant stays locked until it commits, so concurrent uploads cannot all pass one "bytes left" check."""
    limit = limits_for(session, settings, tenant).max_storage_bytes
    if not limit:
        return
    _lock_tenant(session, tenant, "storage")
    used = stored_bytes(session, tenant)
    if used + size > limit:
        raise QuotaExceeded(
            Refusal.STORAGE_QUOTA_EXCEEDED,
            f"tenant {tenant} has {max(limit - used, 0)} bytes of storage left (of {limit}); this upload has {size}",
        )
