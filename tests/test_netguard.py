"""The SSRF guard refuses every non-public target with a clear reason."""

from __future__ import annotations

import pytest

from core.netguard import UnsafeURL, check_url

FAKE_DNS = {
    "internal.example": ["10.1.2.3"],
    "rebind.example": ["93.184.216.34", "192.168.1.5"],
    "public.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
}


def fake_resolver(host: str, port: int) -> list[str]:
    if host not in FAKE_DNS:
        raise OSError("no such host")
    return FAKE_DNS[host]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://[::1]:8080/hook", "loopback"),
        ("https://10.0.0.1/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://[fd00:ec2::254]/", "private"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://internal.example/hook", "private"),
        ("http://rebind.example/hook", "private"),
        ("ftp://public.example/file", "scheme 'ftp'"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("http://user:pw@public.example/", "credentials"),
        ("http://nowhere.example/", "does not resolve"),
        ("http:///path-only", "no host"),
        ("http://[64:ff9b::7f00:1]/", "carries 127.0.0.1 is a loopback"),  # NAT64
        ("http://[64:ff9b::a9fe:a9fe]/", "carries 169.254.169.254 is a link-local"),  # NAT64 to cloud metadata
        ("http://[2002:a00:1::]/", "carries 10.0.0.1 is a private"),  # 6to4
        ("http://public.example:8080/hook", "port 8080 is not allowed"),
        ("http://public.example:22/", "port 22 is not allowed"),
    ],
)
def test_refused_with_reason(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURL, match=reason):
        check_url(url, resolve=fake_resolver)


def test_public_and_explicit_loopback() -> None:
    assert check_url("https://public.example/hook", resolve=fake_resolver) == FAKE_DNS["public.example"]
    assert check_url("http://127.0.0.1:9000/hook", loopback_ports=[9000]) == ["127.0.0.1"]
    assert check_url("https://public.example:8443/", resolve=fake_resolver, ports=[443, 8443])
    assert check_url("http://[2002:808:808::]/") == ["2002:808:808::"], "6to4 of a public address is public"
    with pytest.raises(UnsafeURL, match="private"):
        check_url("http://10.0.0.1/", loopback_ports=[80])


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9001/", "http://127.0.0.1/", "http://[::1]:8333/", "http://localhost:8888/"]
)
def test_loopback_ports_name_ports_not_the_whole_machine(url: str) -> None:
    """An operator's receiver on 127.0.0.1:9000 opens that port only: the object store's admin port, the default
    port and IPv6 loopback on other ports stay refused."""
    with pytest.raises(UnsafeURL, match="loopback"):
        check_url(url, loopback_ports=[9000])
