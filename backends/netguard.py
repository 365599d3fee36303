"""Where flowloom may connect: a URL a user or a config sets (a model's `api_base`, a
Milvus server's URI) may name a loopback, private, link-local or otherwise special
address only when the allow-list names it, so a flow's settings cannot reach a cloud
metadata service (169.254.169.254), a database on the LAN, or the server's own admin
ports.

The allow-list is `FLOWLOOM_ALLOW_HOSTS`: comma-separated host names, addresses and
networks (`10.0.0.0/8`). Unset, it allows loopback only (the embedded model service
listens there); set, it replaces that default (keep `127.0.0.1` in it for the embedded
model).

    >>> url_problem("http://169.254.169.254/latest/meta-data/", allowed=())
    '169.254.169.254 is a link-local address; list it in FLOWLOOM_ALLOW_HOSTS to allow it'
    >>> url_problem("http://127.0.0.1:8080/v1", allowed=("127.0.0.0/8",)) is None
    True
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

__all__ = ["ALLOW_ENV", "DEFAULT_ALLOWED", "allowed_hosts", "url_problem"]

ALLOW_ENV = "FLOWLOOM_ALLOW_HOSTS"
DEFAULT_ALLOWED = ("127.0.0.0/8", "::1/128", "localhost")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def allowed_hosts() -> tuple[str, ...]:
    """The allow-list: `$FLOWLOOM_ALLOW_HOSTS`, or loopback when it is unset."""
    raw = os.environ.get(ALLOW_ENV)
    if raw is None:
        return DEFAULT_ALLOWED
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _kind(address: Address) -> str | None:
    """Why an address is not public (None when it is)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind, flag in (("loopback", address.is_loopback), ("link-local", address.is_link_local),
                       ("private", address.is_private), ("reserved", address.is_reserved),
                       ("multicast", address.is_multicast),
                       ("unspecified", address.is_unspecified)):
        if flag:
            return kind
    return None


def _listed(host: str, addresses: Sequence[Address], allowed: Sequence[str]) -> bool:
    for entry in allowed:
        if entry.lower() == host.lower():
            return True
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if all(a in network for a in addresses):
            return True
    return False


def url_problem(url: str, *, allowed: Sequence[str] | None = None,
                resolve: bool = True) -> str | None:
    """Why `url` may not be connected to (None: it may). A host name is resolved: every
    address it has must be public or allowed. A name that does not resolve (offline) is
    not refused here: it cannot be reached either."""
    allow = allowed_hosts() if allowed is None else allowed
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        return f"{url!r} is not a URL ({exc})"
    if not host:
        return f"{url!r} has no host"
    try:
        addresses: list[Address] = [ipaddress.ip_address(host)]
    except ValueError:
        if not resolve:
            return None
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            return None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    special = [(a, kind) for a in addresses if (kind := _kind(a)) is not None]
    if not special or _listed(host, addresses, allow):
        return None
    address, kind = special[0]
    shown = host if str(address) == host else f"{host} ({address})"
    return f"{shown} is a {kind} address; list it in {ALLOW_ENV} to allow it"
