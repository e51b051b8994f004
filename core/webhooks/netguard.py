"""SSRF guard for URLs the service will call (webhooks, URL inputs): http(s) only, public addresses only.

Loopback, private, link-local (cloud metadata included), multicast, reserved and unspecified ranges are refused
for IPv4 and IPv6, IPv4-mapped IPv6 included. `allow_loopback` is for tests and single-machine installs.
Callers re-check at connect time with the addresses returned here (DNS rebinding) and never follow redirects."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

Resolver = Callable[[str, int], list[str]]


class UnsafeURL(ValueError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.reason = reason


def system_resolver(host: str, port: int) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def _refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return None if allow_loopback else f"{address} is a loopback address"
    for flag, what in (
        ("is_unspecified", "unspecified"), ("is_link_local", "link-local (cloud metadata range)"),
        ("is_multicast", "multicast"), ("is_private", "private"), ("is_reserved", "reserved"),
    ):  # fmt: skip
        if getattr(address, flag):
            return f"{address} is a {what} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def check_url(url: str, allow_loopback: bool = False, resolve: Resolver = system_resolver) -> list[str]:
    """Validate a URL and return the addresses it resolves to (all of them must be public)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL(url, f"scheme {parts.scheme or 'none'!r} is not allowed; use http or https")
    if not parts.hostname:
        raise UnsafeURL(url, "the URL has no host")
    if parts.username or parts.password:
        raise UnsafeURL(url, "credentials in the URL are not allowed")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeURL(url, "the port is not valid") from exc
    try:
        literal = ipaddress.ip_address(parts.hostname)
        addresses = [str(literal)]
    except ValueError:
        try:
            addresses = resolve(parts.hostname, port)
        except OSError as exc:
            raise UnsafeURL(url, f"host {parts.hostname} does not resolve") from exc
    if not addresses:
        raise UnsafeURL(url, f"host {parts.hostname} has no address")
    for raw in addresses:
        reason = _refusal(ipaddress.ip_address(raw.split("%", 1)[0]), allow_loopback)
        if reason:
            raise UnsafeURL(url, reason)
    return addresses
