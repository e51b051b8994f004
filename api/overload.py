"""Load shedding: past `api_max_in_flight` requests at once, answer 503 + Retry-After at once.

Blocking request work runs on `api_threads` threads (sized with the database pool, set at start-up); requests
beyond them wait their turn on the event loop, which costs nothing but memory. This cap bounds that queue, so an
overloaded API answers quickly and keeps its connections instead of timing out or dropping them. Health probes
and /metrics are never shed."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from api.problems import overloaded_problem

NEVER_SHED = ("/healthz", "/readyz", "/metrics")


class LoadShedder:
    def __init__(self, app: ASGIApp, max_in_flight: int) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in NEVER_SHED:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            await overloaded_problem().response(scope.get("path", ""))(scope, receive, send)
            return
        self.in_flight += 1  # one event loop: no lock needed
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
