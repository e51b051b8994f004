"""How many active (queued, running, retrying) jobs each tenant has: one counter row per tenant, changed in the
transactions that change the number — a job's insert (`core.jobs.rows.add_jobs`) and its state changes
(`core.jobs.machine.transition`). The active-jobs quota is then one conditional UPDATE of that row, placed just
before the commit, instead of a count of the tenant's jobs under a lock held across the request: a tenant's
submissions wait on each other for that one statement and the commit only."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import event, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.schema import TenantQuota, TenantUsage

_NEW = "omnimedia.new_active_jobs"  # session.info: tenant -> jobs this transaction inserted, not yet counted


def added(session: Session, tenant: str, count: int = 1) -> None:
    """This transaction inserted `count` active jobs of `tenant`. They are counted when it commits, or earlier,
    under the quota, by `reserve`."""
    pending: Counter[str] = session.info.setdefault(_NEW, Counter())
    pending[tenant] += count
    if not event.contains(session, "before_commit", _count_pending):
        event.listen(session, "before_commit", _count_pending)
        event.listen(session, "after_rollback", _forget_pending)


def reserve(session: Session, tenant: str, default_limit: int) -> int | None:
    """Count this transaction's new jobs of `tenant` if the total stays within its limit (its tenant_quotas row,
    else `default_limit`). None when they fit; else the number of active jobs they would have made. The row stays
    locked until the transaction ends."""
    new = session.info.get(_NEW, Counter()).pop(tenant, 0)
    if not new:
        return None
    override = select(TenantQuota.max_active_jobs).where(TenantQuota.tenant == tenant).scalar_subquery()
    limit = func.coalesce(override, default_limit)
    fits = (
        update(TenantUsage)
        .where(TenantUsage.tenant == tenant, TenantUsage.active_jobs + new <= limit)
        .values(active_jobs=TenantUsage.active_jobs + new)
        .execution_options(synchronize_session=False)
    )
    if session.execute(fits).rowcount == 1:  # type: ignore[attr-defined]
        return None
    # No row yet, or one that another transaction created since this statement's snapshot: once the row is
    # there and seen, the update's answer is the quota's.
    if _current(session, tenant) is None:
        _create_row(session, tenant)
    if session.execute(fits).rowcount == 1:  # type: ignore[attr-defined]
        return None
    return count_of(session, tenant) + new


def changed(session: Session, tenant: str, delta: int) -> None:
    """Jobs of the tenant moved into (delta > 0) or out of (delta < 0) the active states."""
    change = (
        update(TenantUsage)
        .where(TenantUsage.tenant == tenant)
        .values(active_jobs=TenantUsage.active_jobs + delta)
        .execution_options(synchronize_session=False)
    )
    if session.execute(change).rowcount == 0:  # type: ignore[attr-defined]  # the tenant's first job
        _create_row(session, tenant)
        session.execute(change)


def count_of(session: Session, tenant: str) -> int:
    """The tenant's counter (0 before its first job)."""
    return _current(session, tenant) or 0


def _current(session: Session, tenant: str) -> int | None:
    return session.scalar(select(TenantUsage.active_jobs).where(TenantUsage.tenant == tenant))


def _create_row(session: Session, tenant: str) -> None:
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(TenantUsage).values(tenant=tenant, active_jobs=0).on_conflict_do_nothing())


def _count_pending(session: Session) -> None:
    pending: Counter[str] = session.info.pop(_NEW, Counter())
    for tenant, new in pending.items():
        if new:
            changed(session, tenant, new)


def _forget_pending(session: Session, _transaction: object = None) -> None:
    session.info.pop(_NEW, None)
