"""Media named by an http(s) URL in a request (a chat completion's image_url or video_url), fetched through the
SSRF guard: public addresses and allowed ports only, the connection pinned to the address the guard checked (no
second DNS lookup to rebind), no redirects, no proxies, and no more bytes than the tenant may upload."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import httpx

from core.config import Settings
from core.errors import Refusal, Refused
from core.netguard import UnsafeURL, check_url, system_resolver


class RemoteMediaError(Refused):
    """A media URL that cannot be fetched: refused by the guard, unreachable, an error status, or too large."""

    title = "Media URL cannot be used"


def fetch_media(url: str, settings: Settings, max_bytes: int, timeout_s: float = 30.0) -> bytes:
    try:
        addresses = check_url(url, settings.allow_loopback_urls, system_resolver, settings.webhook_ports)
    except UnsafeURL as exc:
        raise RemoteMediaError(Refusal.INVALID_INPUT, f"refused by the SSRF guard: {exc.reason}") from exc
    parts = urlsplit(url)
    address = addresses[0]
    host = f"[{address}]" if ":" in address else address
    pinned = urlunsplit((parts.scheme, host + (f":{parts.port}" if parts.port else ""), parts.path or "/",
                         parts.query, ""))  # fmt: skip
    extensions = {"sni_hostname": parts.hostname or ""} if parts.scheme == "https" else {}
    received = bytearray()
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False) as client:
            request = client.build_request("GET", pinned, headers={"host": parts.netloc}, extensions=extensions)
            response = client.send(request, stream=True)
            try:
                if response.status_code != 200:
                    raise RemoteMediaError(Refusal.INVALID_INPUT, f"{url} answered HTTP {response.status_code}")
                for chunk in response.iter_bytes():
                    received += chunk
                    if len(received) > max_bytes:
                        raise RemoteMediaError(Refusal.UPLOAD_TOO_LARGE, f"{url} is over {max_bytes} bytes")
            finally:
                response.close()
    except httpx.HTTPError as exc:
        raise RemoteMediaError(Refusal.INVALID_INPUT, f"{url} could not be fetched ({type(exc).__name__})") from exc
    return bytes(received)
