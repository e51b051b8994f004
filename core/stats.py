"""Job history from Postgres for operators (Flower keeps no history): counts, engine-time percentiles,
top failure reasons, over time windows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.schema import Job, utcnow
from core.states import JobState

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}
MAX_ROWS_FOR_PERCENTILES = 20_000


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def job_stats(session: Session, top_n: int = 10) -> dict[str, Any]:
    now = utcnow()
    windows: dict[str, Any] = {}
    for name, span in WINDOWS.items():
        since = now - span
        counts: dict[str, dict[str, int]] = {}
        for task, state, n in session.execute(
            select(Job.task, Job.state, func.count()).where(Job.created_at >= since).group_by(Job.task, Job.state)
        ):
            counts.setdefault(task, {})[state] = n
        engine = list(
            session.scalars(
                select(Job.engine_seconds)
                .where(Job.finished_at >= since, Job.state == JobState.SUCCEEDED)
                .limit(MAX_ROWS_FOR_PERCENTILES)
            )
        )
        failures = session.execute(
            select(Job.failure_reason, func.count().label("n"))
            .where(Job.finished_at >= since, Job.state == JobState.FAILED)
            .group_by(Job.failure_reason)
            .order_by(func.count().desc())
            .limit(top_n)
        ).all()
        windows[name] = {
            "counts": counts,
            "total": sum(sum(v.values()) for v in counts.values()),
            "engine_seconds_p50": _percentile(engine, 0.5),
            "engine_seconds_p95": _percentile(engine, 0.95),
            "top_failures": [{"reason": reason, "count": n} for reason, n in failures],
        }
    states = dict(session.execute(select(Job.state, func.count()).group_by(Job.state)).tuples().all())
    return {"generated_at": now.isoformat(), "states_now": states, "windows": windows}
