"""Where the studio may connect for a backend. Pure Python, no Django.

Staff type a backend's URL, and a backend's answers can name more URLs (RunPod's S3
links), so every outbound connection passes two checks:

- `check_url`, when a URL is saved and when a client is built: http(s) only, no
  user-info, and a host that is no link-local or cloud-metadata address in any
  spelling (decimal 2852039166, hex 0xa9fea9fe, octal 0251.0376.0251.0376, short
  169.254.43518, IPv4 inside IPv6 such as ::ffff:169.254.169.254, NAT64 and 6to4,
  a trailing dot, full-width digits).
- `checked_addresses`, at connect (through `GuardedTransport` for httpx and
  `connect_checked` for WebSockets): the host is resolved once, every address it
  resolves to is checked, and the socket is opened to a checked address, so a DNS
  name that points to a forbidden address, or is re-pointed there later, is refused
  too.

What else is allowed depends on the backend: a ComfyUI server lives on the studio's
own network, so private and loopback addresses are fine; a RunPod endpoint is the
public cloud over https, or the local endpoint on loopback.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import httpcore
import httpx

from generation.providers.base import ErrorCode, ProviderError, RetryClass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., Sequence[tuple[Any, ...]]]


@dataclass(frozen=True)
class UrlPolicy:
    name: str
    # Plain http only to this machine (localhost, 127.0.0.0/8, ::1).
    https_only: bool = False
    # Public addresses and loopback only: no private, shared or reserved ranges.
    public_only: bool = False


COMFYUI = UrlPolicy("a ComfyUI backend")
RUNPOD = UrlPolicy("a RunPod backend", https_only=True, public_only=True)
# RunPod's S3 links to outputs; a test or local endpoint may keep them on loopback.
DOWNLOAD = UrlPolicy("an output download")
# The rules every backend URL follows, whatever its kind.
ANY_BACKEND = COMFYUI
BY_KIND = {"comfyui": COMFYUI, "runpod": RUNPOD}

# Names under which cloud metadata services answer (a name or any name under it).
METADATA_NAMES = (
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.tencentyun.com",
    "metadata.platformequinix.com",
)
# Metadata addresses outside the link-local ranges (169.254.169.254 and fe80:: are refused as link-local).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud, legacy
        "fd00:ec2::254",  # AWS over IPv6
        "fd20:ce::254",  # Google Cloud over IPv6
    )
)
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_BROADCAST = ipaddress.ip_address("255.255.255.255")
# IPv6 prefixes whose last 32 bits are an IPv4 address the packets reach.
_EMBEDDING_V4 = tuple(
    ipaddress.ip_network(n)
    for n in (
        "::ffff:0:0/96",  # IPv4-mapped
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b::/96",  # NAT64, well-known prefix
        "64:ff9b:1::/48",  # NAT64, local use
    )
)
_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible, ::a.b.c.d
_HOST_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")


class UrlRefused(ProviderError):
    """A URL or address the studio will not connect to; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.CONFIG_INVALID, message, retry=RetryClass.NEVER)


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # lower case, ASCII, no trailing dot; an IPv6 address without brackets
    port: int
    address: IPAddress | None  # when the host is an address, in whatever spelling


def check_url(url: str, policy: UrlPolicy = ANY_BACKEND) -> Target:
    """Where `url` points, or UrlRefused saying what is wrong with it."""
    if any(ch.isspace() or not ch.isprintable() or ch == "\\" for ch in url):
        raise UrlRefused("the URL contains spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"the URL cannot be read ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlRefused(f"only http and https URLs are allowed, not {scheme or 'a URL without a scheme'}")
    if "@" in parts.netloc:
        raise UrlRefused(
            "a URL with a user name or password (user:password@host) is refused; "
            "a backend's key goes in its API key field"
        )
    host, address = _host_of(parts.netloc, parts.hostname)
    problem = host_problem(host, address, policy)
    if problem:
        raise UrlRefused(problem)
    if policy.https_only and scheme != "https" and not _is_loopback_host(host, address):
        raise UrlRefused(
            f"{policy.name} must use https; plain http is allowed only to this machine "
            "(localhost, 127.0.0.1, ::1), for the local endpoint"
        )
    return Target(scheme, host, port or (443 if scheme == "https" else 80), address)


def _host_of(netloc: str, hostname: str | None) -> tuple[str, IPAddress | None]:
    if not hostname:
        raise UrlRefused("the URL has no host")
    if netloc.startswith("["):
        try:
            return hostname, ipaddress.IPv6Address(unquote(hostname))
        except ValueError:
            raise UrlRefused(f"[{hostname}] is not a valid IPv6 address") from None
    host = hostname
    if not host.isascii():
        try:
            # IDNA's nameprep folds full-width digits and dots, as a resolver would.
            host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise UrlRefused(f"the host {hostname!r} is not a valid host name") from None
    if host.endswith("."):
        host = host[:-1]
    if not host or not set(host) <= _HOST_CHARACTERS or "" in host.split("."):
        raise UrlRefused(f"the host {hostname!r} is not a valid host name or address")
    return host, ipv4_of(host)


def ipv4_of(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a host spells as numbers, read as inet_aton() and URL parsers read it
    (1 to 4 parts, each decimal, 0x hex or 0 octal; the last fills the remaining bytes), or None
    for a name. A host that ends in a number but is no valid address is refused."""
    parts = host.split(".")
    if not _is_number(parts[-1]):
        return None
    values = [_number(part) for part in parts]
    numbers = [v for v in values if v is not None]
    if (
        len(parts) > 4
        or len(numbers) != len(values)
        or any(v > 255 for v in numbers[:-1])
        or numbers[-1] >= 256 ** (5 - len(numbers))
    ):
        raise UrlRefused(f"the host {host!r} ends in a number but is not a valid IPv4 address")
    return ipaddress.IPv4Address(sum(v * 256 ** (3 - i) for i, v in enumerate(numbers[:-1])) + numbers[-1])


def _is_number(part: str) -> bool:
    if part[:2] in ("0x", "0X"):
        return all(ch in "0123456789abcdefABCDEF" for ch in part[2:])
    return part.isdigit()


def _number(part: str) -> int | None:
    try:
        if part[:2] in ("0x", "0X"):
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part.startswith("0"):
            return int(part[1:], 8)
        return int(part, 10) if part.isdigit() else None
    except ValueError:
        return None


def host_problem(host: str, address: IPAddress | None, policy: UrlPolicy) -> str | None:
    if address is not None:
        problem = address_problem(address, policy)
        if problem is None:
            return None
        reached = _views(address)[-1]
        spelled = "" if str(reached) == host else f" (the address {reached})"
        return f"{host}{spelled} is {problem}"
    if any(host == name or host.endswith("." + name) for name in METADATA_NAMES):
        return f"{host} is the name of a cloud metadata service; the studio never connects there"
    return None


def address_problem(address: IPAddress, policy: UrlPolicy) -> str | None:
    """Why the studio may not connect to `address` under `policy`, or None."""
    views = _views(address)
    for view in views:
        if view in METADATA_ADDRESSES:
            return "a cloud metadata address; the studio never connects there"
        if view.is_link_local:
            return (
                "a link-local address (169.254.0.0/16, fe80::/10), where cloud metadata "
                "services answer; the studio never connects there"
            )
        if view.is_unspecified or view.is_multicast or view == _BROADCAST or view in _THIS_NETWORK:
            return "not an address a server answers on"
    target = views[-1]  # where the packets go: the IPv4 address inside an IPv6 one
    if policy.public_only and not (target.is_loopback or target.is_global):
        return (
            f"a private or reserved address; {policy.name} must be on the public internet "
            "or on this machine (loopback)"
        )
    return None


def _views(address: IPAddress) -> list[IPAddress]:
    """The address, then any IPv4 address it carries."""
    views: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        plain = ipaddress.IPv6Address(address.packed)  # without a scope id
        inner: ipaddress.IPv4Address | None = None
        if any(plain in network for network in _EMBEDDING_V4) or (plain in _COMPATIBLE and int(plain) > 1):
            inner = ipaddress.IPv4Address(int(plain) & 0xFFFFFFFF)
        elif plain.sixtofour is not None:
            inner = plain.sixtofour
        elif plain.teredo is not None:
            inner = plain.teredo[1]
        if inner is not None:
            views.append(inner)
    return views


def _is_loopback_host(host: str, address: IPAddress | None) -> bool:
    if address is not None:
        return _views(address)[-1].is_loopback
    return host == "localhost" or host.endswith(".localhost")


# -- at connect ---------------------------------------------------------------------
def checked_addresses(
    host: str, port: int, policy: UrlPolicy, *, resolver: Resolver | None = None
) -> list[str]:
    """Every address `host` resolves to, once each; UrlRefused when any of them is forbidden.

    OSError when the name does not resolve. Connect to these addresses, never to
    `host` again: a second lookup could answer differently.
    """
    host = host.strip("[]").lower().rstrip(".")
    literal: IPAddress | None
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = ipv4_of(host) if host and set(host) <= _HOST_CHARACTERS else None
    problem = host_problem(host, literal, policy)
    if problem:
        raise UrlRefused(problem)
    resolve = resolver or socket.getaddrinfo
    found: list[str] = []
    for info in resolve(host, port, type=socket.SOCK_STREAM):
        ip = str(info[4][0])
        if ip in found:
            continue
        problem = address_problem(ipaddress.ip_address(ip), policy)
        if problem:
            raise UrlRefused(f"{host} resolves to {ip}, {problem}")
        found.append(ip)
    if not found:
        raise OSError(f"{host} resolves to no address")
    return found


def connect_checked(
    host: str, port: int, policy: UrlPolicy, *, timeout: float, resolver: Resolver | None = None
) -> socket.socket:
    """A blocking TCP socket to a checked address of `host` (for a WebSocket client's `sock`)."""
    last: OSError | None = None
    for ip in checked_addresses(host, port, policy, resolver=resolver):
        try:
            sock = socket.create_connection((ip, port), timeout=timeout)
        except OSError as exc:
            last = exc
            continue
        sock.settimeout(None)
        return sock
    assert last is not None
    raise last


class _GuardedBackend(httpcore.NetworkBackend):
    """httpcore's network backend, connecting only to addresses the policy allows."""

    def __init__(self, policy: UrlPolicy, resolver: Resolver | None) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = checked_addresses(host, port, self._policy, resolver=self._resolver)
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        last: Exception | None = None
        for ip in addresses:
            try:
                return self._inner.connect_tcp(ip, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise UrlRefused("backends are reached over TCP, not a Unix socket")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


@functools.cache
def _default_tls() -> ssl.SSLContext:
    return httpx.create_ssl_context()


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with every request's URL and every connection's address checked.

    It reads no proxy settings from the environment: the check must see the
    address the studio really connects to.
    """

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        verify: ssl.SSLContext | None = None,
        resolver: Resolver | None = None,
        limits: httpx.Limits | None = None,
    ) -> None:
        tls = verify or _default_tls()
        limits = limits or httpx.Limits(
            max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0
        )
        super().__init__(verify=tls, trust_env=False)
        self.policy = policy
        # httpx takes no network backend, so its connection pool is built again with one.
        self._pool = httpcore.ConnectionPool(
            ssl_context=tls,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(policy, resolver),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        check_url(str(request.url), self.policy)
        return super().handle_request(request)
