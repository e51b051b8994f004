"""SSRF guard for URLs the service will call (webhooks, media URLs of chat completions): http(s) only, public
addresses and allowed ports only.

Loopback, private, link-local (cloud metadata included), multicast, reserved and unspecified ranges are refused
for IPv4 and IPv6, and so is any IPv4 address carried inside IPv6 (IPv4-mapped, NAT64 64:ff9b::/96 and
64:ff9b:1::/48, 6to4 2002::/16, Teredo). Ports are limited to an allowlist (80 and 443 by default).
Loopback is refused too, except on the ports named in `loopback_ports`: an operator's own webhook receiver on this
machine (OMNIMEDIA_WEBHOOK_LOOPBACK_PORTS), never a tenant's media URL, never every port. Callers re-check at connect
time with the addresses returned here (DNS rebinding) and never follow redirects."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Collection
from urllib.parse import urlsplit

Resolver = Callable[[str, int], list[str]]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
DEFAULT_PORTS = (80, 443)
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class UnsafeURL(ValueError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.reason = reason


def system_resolver(host: str, port: int) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4, Teredo client), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if any(address in network for network in NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def _refusal(address: Address, loopback_allowed: bool) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and (inner := embedded_ipv4(address)) is not None:
        outer_reason = _refusal(inner, loopback_allowed=False)
        return f"{address} carries {outer_reason}" if outer_reason else None
    if address.is_loopback:
        return None if loopback_allowed else f"{address} is a loopback address"
    for flag, what in (
        ("is_unspecified", "unspecified"),
        ("is_link_local", "link-local (cloud metadata range)"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(address, flag):
            return f"{address} is a {what} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def check_url(
    url: str,
    resolve: Resolver = system_resolver,
    ports: Collection[int] = DEFAULT_PORTS,
    loopback_ports: Collection[int] = (),
) -> list[str]:
    """Validate a URL and return the addresses it resolves to: all of them public on an allowed port, or all of
    them loopback on one of `loopback_ports`."""
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
    parsed = [ipaddress.ip_address(raw.split("%", 1)[0]) for raw in addresses]
    loopback = all(address.is_loopback for address in parsed)
    for address in parsed:
        reason = _refusal(address, loopback and port in loopback_ports)
        if reason:
            raise UnsafeURL(url, reason)
    if not loopback and port not in ports:
        allowed = ", ".join(str(p) for p in sorted(ports))
        raise UnsafeURL(url, f"port {port} is not allowed (allowed: {allowed})")
    return addresses
