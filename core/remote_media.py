"""Media named by an http(s) URL in a request (a chat completion's image_url or video_url), fetched through
core.outbound: public addresses on allowed ports only (never loopback, whatever the webhook settings say), no
redirects, no compression, the bytes counted on the wire and spooled to a temporary file (never whole in memory),
one wall-clock deadline, and at most `media_fetch_per_tenant` fetches of one tenant at once (429 past it), so a
slow server costs its tenant only. It runs on the event loop: no thread and no database session wait on it."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import IO

from core import outbound
from core.config import Settings
from core.errors import Refusal, Refused
from core.netguard import system_resolver
from core.outbound import Guard, OutboundError

SPOOL_BYTES = 1024 * 1024  # past this a fetched file goes to disk
_FETCHING: Counter[str] = Counter()  # fetches in flight per tenant (one event loop per API process)


class RemoteMediaError(Refused):
    """A media URL that cannot be fetched: refused by the guard, unreachable, an error status, or too large."""

    title = "Media URL cannot be used"


def spooled() -> IO[bytes]:
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)


@asynccontextmanager
async def tenant_slot(tenant: str, settings: Settings) -> AsyncIterator[None]:
    if _FETCHING[tenant] >= settings.media_fetch_per_tenant:
        raise RemoteMediaError(
            Refusal.RATE_LIMITED,
            f"at most {settings.media_fetch_per_tenant} media URLs of one tenant are fetched at once",
            retry_after_s=max(1, int(settings.media_fetch_timeout_s)),
        )
    _FETCHING[tenant] += 1
    try:
        yield
    finally:
        _FETCHING[tenant] -= 1
        if not _FETCHING[tenant]:
            del _FETCHING[tenant]


def media_guard(settings: Settings) -> Guard:
    """Public addresses on the allowed ports; no loopback_ports: a tenant's URL never reaches this machine."""
    return Guard(system_resolver, settings.webhook_ports)


async def fetch_media(url: str, settings: Settings, tenant: str, max_bytes: int) -> IO[bytes]:
    """The media at `url` in a temporary file, positioned at its start (the caller closes it)."""
    guard = media_guard(settings)
    sink = spooled()
    try:
        async with tenant_slot(tenant, settings):
            reply = await outbound.request("GET", url, guard, settings.media_fetch_timeout_s, max_bytes, sink.write)
    except OutboundError as exc:
        sink.close()
        refusal = Refusal.UPLOAD_TOO_LARGE if exc.kind == "too_large" else Refusal.INVALID_INPUT
        raise RemoteMediaError(refusal, f"{url}: {exc.reason}") from exc
    except BaseException:
        sink.close()
        raise
    if reply.status != 200:
        sink.close()
        raise RemoteMediaError(Refusal.INVALID_INPUT, f"{url} answered HTTP {reply.status}")
    sink.seek(0)
    return sink
