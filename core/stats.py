"""Job history from Postgres for operators (Flower keeps no history): counts, engine-time percentiles,
top failure reasons, over time windows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.schema import Job, as_utc, utcnow
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
    return {"generated_at": now.isoformat(), "states_now": states, "windows": windows, **hourly(session, now)}


def hourly(session: Session, now: datetime) -> dict[str, Any]:
    """The last 24 hours hour by hour (jobs finished, hours of media transcribed) and failures by class."""
    since = now - timedelta(days=1)
    finished = session.execute(
        select(Job.finished_at, Job.state, Job.media_seconds, Job.failure_class).where(Job.finished_at >= since)
    ).all()
    jobs, media = [0] * 24, [0.0] * 24
    failures: dict[str, int] = {}
    for at, state, media_s, failure in finished:
        if at is None:
            continue
        slot = min(23, int((now - as_utc(at)).total_seconds() // 3600))
        jobs[23 - slot] += 1
        if state == JobState.SUCCEEDED:
            media[23 - slot] += (media_s or 0.0) / 3600
        elif state == JobState.FAILED:
            failures[str(failure or "unknown")] = failures.get(str(failure or "unknown"), 0) + 1
    return {"jobs_per_hour": jobs, "media_hours_per_hour": [round(h, 4) for h in media], "failures_by_class": failures}
