"""Operator views for an admin token: job statistics as JSON and as a small HTML page."""

from __future__ import annotations

import base64
import html
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from api.deps import SessionDep, SettingsDep
from api.problems import PROBLEM_RESPONSES, Problem
from core.errors import ProblemKind
from core.health import service_health
from core.report import bar_chart
from core.stats import job_stats

router = APIRouter(tags=["admin"], responses=PROBLEM_RESPONSES)


def require_admin(request: Request, settings: SettingsDep) -> None:
    """Bearer <token>, or HTTP Basic with the token as password (so a browser can open the page)."""
    if not settings.admin_token:
        raise Problem(
            403, ProblemKind.ADMIN_DISABLED, "Admin API is disabled", "set OMNIMEDIA_ADMIN_TOKEN to enable it"
        )
    header = request.headers.get("authorization", "")
    given = ""
    if header.lower().startswith("bearer "):
        given = header[7:].strip()
    elif header.lower().startswith("basic "):
        try:
            given = base64.b64decode(header[6:]).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            given = ""
    if not secrets.compare_digest(given.encode(), settings.admin_token.encode()):
        problem = Problem(
            401, ProblemKind.UNAUTHORIZED, "Admin token required", "send Authorization: Bearer <admin token>"
        )
        problem.headers["WWW-Authenticate"] = 'Basic realm="omnimedia admin"'
        raise problem


AdminDep = Annotated[None, Depends(require_admin)]


@router.get("/v1/admin/health")
def health_view(session: SessionDep, settings: SettingsDep, _admin: AdminDep) -> dict[str, Any]:
    """Per queue: live consumers, broker depth, oldest queued job; the webhook backlog; the last maintenance pass."""
    return service_health(session, settings).as_dict()


@router.get("/v1/admin/jobs/stats")
def stats(session: SessionDep, _admin: AdminDep) -> dict[str, Any]:
    """Counts by state and task over 1 h / 24 h / 7 d, p50/p95 engine seconds, top failure reasons."""
    return job_stats(session)


@router.get("/admin/stats", response_class=HTMLResponse, include_in_schema=False)
def stats_page(session: SessionDep, settings: SettingsDep, _admin: AdminDep) -> HTMLResponse:
    data = job_stats(session)
    now = service_health(session, settings).as_dict()
    esc = html.escape
    embedded = settings.mode == "embedded"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>omnimedia job stats</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}</style></head><body>",
        f"<h1>omnimedia job stats</h1><p>generated {esc(data['generated_at'])}</p>",
        "<h2>now</h2><table><tr><th>state</th><th>jobs</th></tr>",
    ]
    parts += [f"<tr><td>{esc(s)}</td><td>{n}</td></tr>" for s, n in sorted(data["states_now"].items())]
    parts.append("</table>")
    hours = [f"-{23 - i}h" if i < 23 else "this hour" for i in range(24)]
    parts.append(
        bar_chart("Jobs finished per hour (last 24 h)", list(zip(hours, data["jobs_per_hour"], strict=True)), "jobs")
    )
    parts.append(
        bar_chart(
            "Hours of media per hour (last 24 h)", list(zip(hours, data["media_hours_per_hour"], strict=True)), "h"
        )
    )
    failures = sorted(data["failures_by_class"].items(), key=lambda kv: -kv[1])
    parts.append(bar_chart("Failures by class (last 24 h)", [(k, float(v)) for k, v in failures], "jobs"))
    parts.append("<h2>queues</h2>")
    if embedded:
        parts.append("<p>Not applicable: the embedded default runs jobs in this process, with no broker queue.</p>")
    else:
        parts.append(
            bar_chart("Queue depth", [(name, float(q["depth"] or 0)) for name, q in now["queues"].items()], "jobs")
        )
        parts.append("<table><tr><th>queue</th><th>consumers</th><th>depth</th><th>oldest queued job (s)</th></tr>")
        for name, queue in now["queues"].items():
            cells = [queue["consumers"], queue["depth"], queue["oldest_queued_s"]]
            parts.append(f"<tr><td>{esc(name)}</td>" + "".join(f"<td>{esc(_shown(c))}</td>" for c in cells) + "</tr>")
        parts.append("</table>")
    maintenance = now["maintenance_age_s"]
    if embedded:
        last = "not applicable (the embedded default has no maintenance worker)"
    else:
        last = "none yet" if maintenance is None else f"{maintenance:.0f} s ago"
    parts.append(f"<p>webhooks due and undelivered: {now['webhooks_pending']}; last maintenance pass: {esc(last)}</p>")
    for name, window in data["windows"].items():
        p50, p95 = window["engine_seconds_p50"], window["engine_seconds_p95"]
        parts.append(f"<h2>last {esc(name)}: {window['total']} jobs</h2>")
        parts.append(f"<p>engine seconds p50 {esc(_shown(p50))}, p95 {esc(_shown(p95))}</p>")
        parts.append("<table><tr><th>task</th><th>state</th><th>jobs</th></tr>")
        for task, by_state in sorted(window["counts"].items()):
            parts += [
                f"<tr><td>{esc(task)}</td><td>{esc(s)}</td><td>{n}</td></tr>" for s, n in sorted(by_state.items())
            ]
        parts.append("</table>")
        if window["top_failures"]:
            parts.append("<table><tr><th>failure reason</th><th>jobs</th></tr>")
            parts += [
                f"<tr><td>{esc(f['reason'] or '')}</td><td>{f['count']}</td></tr>" for f in window["top_failures"]
            ]
            parts.append("</table>")
    parts.append("</body></html>")
    return HTMLResponse("".join(parts))


def _shown(value: object) -> str:
    """A figure for the page: a dash where there is none yet (never "None")."""
    if value is None:
        return "—"
    return f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
