"""Every outbound HTTP request of the service (tenants' media URLs, webhook deliveries) goes through here: to the
address the SSRF guard approved (pinned: no second DNS lookup to rebind), no redirects, no proxies, no
compression (`Accept-Encoding: identity`; bytes are counted as they come off the wire, never inflated), and one
wall-clock deadline for the whole exchange (connect, send, every read), not a timeout per read that a server
trickling a byte at a time can stretch for ever."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import lru_cache, partial
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx

from core.netguard import Resolver, UnsafeURL, check_url

Sink = Callable[[bytes], object]


class OutboundError(Exception):
    """A request that did not complete; `kind` says why: refused, timeout, too_large, encoding or connection."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class Reply:
    status: int
    headers: httpx.Headers
    received: int  # body bytes read off the wire
    head: bytes = b""  # without a sink: the first max_bytes of the body


@dataclass(frozen=True)
class Guard:
    """What the SSRF guard allows for one kind of call."""

    resolve: Resolver
    ports: Collection[int]
    loopback_ports: Collection[int] = ()


@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every call: building one per client costs ~20 ms (the CA bundle)."""
    return ssl.create_default_context()


def pinned(url: str, guard: Guard) -> tuple[str, dict[str, str], dict[str, str]]:
    """The URL rewritten to the address the guard checked, its Host header and TLS server name."""
    try:
        addresses = check_url(url, guard.resolve, guard.ports, guard.loopback_ports)
    except UnsafeURL as exc:
        raise OutboundError("refused", f"refused by the SSRF guard: {exc.reason}") from exc
    parts = urlsplit(url)
    address = addresses[0]
    host = f"[{address}]" if ":" in address else address
    target = urlunsplit(
        (parts.scheme, host + (f":{parts.port}" if parts.port else ""), parts.path or "/", parts.query, "")
    )
    extensions = {"sni_hostname": parts.hostname or ""} if parts.scheme == "https" else {}
    return target, {"host": parts.netloc, "accept-encoding": "identity"}, extensions


async def request(
    method: str,
    url: str,
    guard: Guard,
    deadline_s: float,
    max_bytes: int,
    sink: Sink | None = None,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    refuse_encoded: bool = True,
) -> Reply:
    """Make one request; the body's bytes go to `sink` as they arrive (None: keep the first `max_bytes`, read no more).
    Past `max_bytes` a sink's request fails as too_large; past `deadline_s` any request fails as timeout."""
    target, base_headers, extensions = pinned(url, guard)
    try:
        with anyio.fail_after(deadline_s):
            return await _exchange(
                method,
                target,
                {**base_headers, **(headers or {})},
                extensions,
                content,
                deadline_s,
                max_bytes,
                sink,
                refuse_encoded,
            )
    except TimeoutError as exc:
        raise OutboundError("timeout", f"no complete answer within {deadline_s:g} s") from exc
    except httpx.HTTPError as exc:
        raise OutboundError("connection", f"connection failed: {type(exc).__name__}: {exc}") from exc


async def _exchange(
    method: str,
    target: str,
    headers: dict[str, str],
    extensions: dict[str, str],
    content: bytes | None,
    deadline_s: float,
    max_bytes: int,
    sink: Sink | None,
    refuse_encoded: bool,
) -> Reply:
    async with httpx.AsyncClient(
        timeout=deadline_s, follow_redirects=False, trust_env=False, verify=tls_context()
    ) as client:
        built = client.build_request(method, target, headers=headers, content=content, extensions=extensions)
        response = await client.send(built, stream=True)
        try:
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if refuse_encoded and encoding not in ("", "identity"):
                raise OutboundError("encoding", f"the answer is compressed ({encoding}); only identity is accepted")
            received, head = 0, b""
            async for chunk in response.aiter_raw():  # wire bytes: nothing is inflated
                received += len(chunk)
                if sink is None:
                    head = (head + chunk)[:max_bytes]
                    if received >= max_bytes:
                        break
                    continue
                if received > max_bytes:
                    raise OutboundError("too_large", f"the answer is over {max_bytes} bytes")
                sink(chunk)
        finally:
            await response.aclose()
    return Reply(response.status_code, response.headers, received, head)


def request_blocking(*args: object, **kwargs: object) -> Reply:
    """`request` from a thread without an event loop (Celery tasks, the embedded sender)."""
    return anyio.run(partial(request, *args, **kwargs))  # type: ignore[arg-type]
