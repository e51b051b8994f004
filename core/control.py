"""Operator controls over live Celery workers, through Celery's own broadcast (works across nodes)."""

from __future__ import annotations

import socket

from core.celery_app import app

REPLY_TIMEOUT_S = 2.0


def live_workers() -> list[str]:
    """Node names of the workers that answer a ping now."""
    replies = app.control.ping(timeout=REPLY_TIMEOUT_S) or []
    return sorted(name for reply in replies for name in reply)


def drain(names: list[str] | None = None) -> list[str]:
    """Ask workers to stop taking jobs, finish the ones they run and exit 0 (Celery's warm shutdown, so their
    supervisor does not restart them). Default: every worker on this host. Returns the names asked."""
    if not names:
        host = socket.gethostname()
        names = [name for name in live_workers() if name.endswith(f"@{host}")]
    if names:
        app.control.broadcast("shutdown", destination=names)
    return names
