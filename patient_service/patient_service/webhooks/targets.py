"""Which URLs a webhook may be sent to: no SSRF into the hospital's own network (doc/alerts.md).

A target must be `https` to a public address. Hosts in WEBHOOK_ALLOWED_HOSTS may also use plain
http and private, loopback or link-local addresses (a receiver on the same machine, in dev). The
check runs on the addresses the name resolves to, when a subscription is stored and again before
each delivery; the delivery then connects to the address that was checked (`Target.connect_url`),
so a name that resolves elsewhere a moment later (DNS rebinding) cannot redirect it inward.
"""

import ipaddress
import socket
import urllib.parse
from dataclasses import dataclass

DEFAULT_PORTS = {"http": 80, "https": 443}


class UnsafeTarget(ValueError):
    """The URL may not be a webhook target; the message says why."""


@dataclass(frozen=True)
class Target:
    url: str
    host: str
    address: str  # the checked address the delivery connects to

    @property
    def connect_url(self) -> str:
        """`url` with its host replaced by the checked address (the Host header keeps the name)."""
        parts = urllib.parse.urlsplit(self.url)
        literal = f"[{self.address}]" if ":" in self.address else self.address
        netloc = f"{literal}:{parts.port}" if parts.port else literal
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    @property
    def host_header(self) -> str:
        port = urllib.parse.urlsplit(self.url).port
        return f"{self.host}:{port}" if port else self.host


def check(url: str, allowed_hosts: frozenset[str]) -> Target:
    """The target `url` names, resolved; UnsafeTarget if it may not be sent to."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
    except ValueError as exc:  # e.g. an unclosed "[" of an IPv6 address
        raise UnsafeTarget("The URL is not a valid URL.") from exc
    allowed = host in allowed_hosts
    if parts.scheme not in DEFAULT_PORTS or not host:
        raise UnsafeTarget("The URL must be an absolute https URL.")
    if parts.scheme != "https" and not allowed:
        raise UnsafeTarget("The URL must use https (plain http only for hosts in WEBHOOK_ALLOWED_HOSTS).")
    if parts.username or parts.password:
        raise UnsafeTarget("The URL may not hold credentials; the signature authenticates each delivery.")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise UnsafeTarget("The URL's port is not a valid port.") from exc
    addresses = _resolve(host, port)
    if not allowed:
        for address in addresses:
            if not _public(address):
                raise UnsafeTarget(f"{host} resolves to a private, loopback or reserved address.")
    return Target(url=url, host=host, address=addresses[0])


# Special-purpose ranges (the IANA registries) that are never a receiver's address, listed rather
# than left to `is_global`: Pythons without the fix for CVE-2024-4032 call some of them global,
# and some lead inwards by translation (NAT64 maps 64:ff9b::7f00:1 to 127.0.0.1, 6to4 and Teredo
# embed an IPv4 address).
DENIED = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        "::/127", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/23",
        "2001:db8::/32", "2002::/16", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    )
)  # fmt: skip


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:  # ::ffff:127.0.0.1 is loopback
        ip = ip.ipv4_mapped
    return ip.is_global and not any(ip in network for network in DENIED)


def _resolve(host: str, port: int) -> list[str]:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:  # unknown name, a label too long, a NUL
        raise UnsafeTarget(f"{host} does not resolve.") from exc
    # An IPv6 address may carry a zone ("fe80::1%eth0"): the zone is not part of the address.
    return [str(info[4][0]).split("%")[0] for info in found]
