"""Which URLs and addresses may be fetched, and the connections that enforce it.

Only http and https; every connection goes to an address that was resolved and vetted just
before connecting (so a name cannot resolve to a public address for the check and a private
one for the request).

The errors, under :class:`~retrieval.errors.LoaderError`::

    FetchError          the URL could not be fetched (network, HTTP status, timeout)
    ├── BlockedURLError a URL or address the safety rules refuse
    └── TooLargeError   the body is over the size cap
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from retrieval.config import WebConfig
from retrieval.errors import LoaderError

__all__ = [
    "BlockedURLError",
    "FetchError",
    "Resolver",
    "TooLargeError",
    "VettedTransport",
    "VettingBackend",
    "check_address",
    "check_url",
    "short_url",
    "system_resolve",
    "vet_url",
]

# host, port -> the IP addresses it resolves to
Resolver = Callable[[str, int], Sequence[str]]

# The AWS/GCP/Azure metadata services; all are link-local or private too, named here so the
# refusal says why.
METADATA = frozenset({"169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200"})


class FetchError(LoaderError):
    """A URL could not be fetched."""


class BlockedURLError(FetchError):
    """The URL or the address it resolves to is refused by the safety rules."""


class TooLargeError(FetchError):
    """The response body is larger than ``web.max_bytes``."""


def check_url(url: str) -> tuple[str, int]:
    """Refuse anything but an http(s) URL with a host; return its host and port."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BlockedURLError(f"{short_url(url)}: not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BlockedURLError(f"{short_url(url)}: only http and https URLs can be fetched")
    if not parts.hostname:
        raise BlockedURLError(f"{short_url(url)}: the URL has no host")
    return parts.hostname, port or (443 if scheme == "https" else 80)


def check_address(address: str, host: str = "") -> None:
    """Refuse an IP address that is not public (loopback, private, link-local, metadata, ...)."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        raise BlockedURLError(f"{host or address}: {address!r} is not an IP address") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    name = f"{host} ({ip})" if host and host != str(ip) else str(ip)
    if str(ip) in METADATA:
        raise BlockedURLError(f"{name} is a cloud metadata address; refused")
    if ip.is_loopback:
        kind = "loopback"
    elif ip.is_link_local:
        kind = "link-local"
    elif ip.is_private:
        kind = "private"
    elif ip.is_multicast or ip.is_unspecified or ip.is_reserved or not ip.is_global:
        kind = "non-public"
    else:
        return
    raise BlockedURLError(f"{name} is a {kind} address; refused (set [web] allow_private_networks = true to allow it)")


def vet_url(url: str, web: WebConfig, resolve: Resolver | None = None) -> None:
    """Raise BlockedURLError for a URL no fetch could ever make: not http(s), or (unless
    ``web.allow_private_networks``) a host that is or resolves to a non-public address.

    A host that does not resolve now is let through: that may pass (a network blip at boot).
    """
    host, port = check_url(url)
    if web.allow_private_networks:
        return
    if _is_ip(host):
        check_address(host, host)
        return
    try:
        addresses = list((resolve or system_resolve)(host, port))
    except (OSError, UnicodeError):
        return
    for address in addresses:
        check_address(address, host)


def system_resolve(host: str, port: int) -> list[str]:
    """Resolve a host name with the system resolver; return its addresses, in order, once each."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class VettingBackend(httpcore.SyncBackend):
    """Connect only to addresses resolved and vetted here, at connection time."""

    def __init__(self, resolve: Resolver, allow_private: bool) -> None:
        self._resolve = resolve
        self._allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        try:
            # An address literal needs no lookup (and must not reach a resolver).
            addresses = [str(ipaddress.ip_address(host))] if _is_ip(host) else list(self._resolve(host, port))
        except (OSError, UnicodeError) as exc:
            raise FetchError(f"{host}: cannot resolve the host name ({exc})") from None
        if not addresses:
            raise FetchError(f"{host}: the host name resolves to no address")
        if not self._allow_private:
            # Any bad address refuses the host: a name that mixes public and private addresses
            # is not one to trust.
            for address in addresses:
                check_address(address, host)
        failure: Exception | None = None
        for address in addresses:
            try:
                # The vetted address, not the name: what was checked is what is connected to.
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure


class VettedTransport(httpx.BaseTransport):
    """An httpx transport over an httpcore pool that connects through the vetting backend."""

    def __init__(self, backend: httpcore.NetworkBackend, max_connections: int) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            keepalive_expiry=5.0,
            network_backend=backend,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        response = self._pool.handle_request(core)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(response),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


class _Body(httpx.SyncByteStream):
    """The body of an httpcore response as an httpx stream."""

    def __init__(self, response: httpcore.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from self._response.iter_stream()

    def close(self) -> None:
        self._response.close()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def short_url(url: str, limit: int = 200) -> str:
    """Return a URL fit for a message: credentials dropped, long ones cut."""
    try:
        parts = urlsplit(url)
        if parts.username or parts.password:
            url = parts._replace(netloc=parts.hostname or "").geturl()
    except ValueError:
        pass
    return url if len(url) <= limit else url[: limit - 1] + "…"
