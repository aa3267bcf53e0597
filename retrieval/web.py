"""Fetch pages and feeds from URLs that users or the config chose, safely.

Only http and https; every connection goes to an address that was resolved and vetted just
before connecting (so a name cannot resolve to a public address for the check and a private
one for the request); redirects are followed by hand, capped, and each hop is vetted again;
bodies are read as a stream and cut off at ``web.max_bytes`` and at ``web.timeout`` seconds;
only text content types are read; 5xx and 429 are retried with back-off; at most
``web.per_host`` requests run against one host at a time.

The errors, under :class:`~retrieval.errors.LoaderError`::

    FetchError          the URL could not be fetched (network, HTTP status, timeout)
    ├── BlockedURLError a URL or address the safety rules refuse
    └── TooLargeError   the body is over the size cap
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from retrieval.config import Config, WebConfig
from retrieval.errors import LoaderError

if TYPE_CHECKING:
    from retrieval.newsindex import IngestReport, NewsIndex

__all__ = [
    "BlockedURLError",
    "FetchError",
    "Fetched",
    "Fetcher",
    "Resolver",
    "TooLargeError",
    "Validators",
    "check_address",
    "check_url",
    "ingest_url",
    "vet_url",
]

log = logging.getLogger(__name__)

# host, port -> the IP addresses it resolves to
Resolver = Callable[[str, int], Sequence[str]]

ACCEPT = (
    "text/html,application/xhtml+xml,application/rss+xml,application/atom+xml,"
    "application/xml;q=0.9,text/xml;q=0.9,text/plain;q=0.8"
)
TEXT_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/rdf+xml",
        "application/xml",
        "text/xml",
        "text/plain",
    }
)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 30.0
# The AWS/GCP/Azure metadata services; all are link-local or private too, named here so the
# refusal says why.
METADATA = frozenset({"169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200"})


class FetchError(LoaderError):
    """A URL could not be fetched."""


class BlockedURLError(FetchError):
    """The URL or the address it resolves to is refused by the safety rules."""


class TooLargeError(FetchError):
    """The response body is larger than ``web.max_bytes``."""


@dataclass(frozen=True)
class Validators:
    """What a server said about a response, for a conditional GET next time."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        """Return the conditional request headers."""
        out: dict[str, str] = {}
        if self.etag:
            out["If-None-Match"] = self.etag
        if self.last_modified:
            out["If-Modified-Since"] = self.last_modified
        return out


@dataclass(frozen=True)
class Fetched:
    """A fetched response: 200 with a body, or 304 (``not_modified``) without."""

    url: str  # after redirects
    status: int
    content_type: str  # media type, lower case, no parameters ("" if the server sent none)
    charset: str | None
    body: bytes
    validators: Validators

    @property
    def not_modified(self) -> bool:
        """Return True when the server answered 304 Not Modified."""
        return self.status == 304

    def text(self) -> str:
        """Return the body decoded with its declared charset (else a meta tag, else UTF-8)."""
        charset = self.charset or _meta_charset(self.body[:4096]) or "utf-8"
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


def check_url(url: str) -> tuple[str, int]:
    """Refuse anything but an http(s) URL with a host; return its host and port."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BlockedURLError(f"{_short(url)}: not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BlockedURLError(f"{_short(url)}: only http and https URLs can be fetched")
    if not parts.hostname:
        raise BlockedURLError(f"{_short(url)}: the URL has no host")
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


class _VettingBackend(httpcore.SyncBackend):
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


class _VettedTransport(httpx.BaseTransport):
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


# Low-level failures worth a retry (a dropped connection, a timeout) or a clear message.
_NETWORK_ERRORS = (
    httpx.TransportError,
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
)


class _Retry(Exception):
    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class Fetcher:
    """An HTTP client for untrusted URLs; thread-safe, close it (or use ``with``) when done."""

    def __init__(
        self,
        web: WebConfig,
        *,
        resolve: Resolver | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.web = web
        self._sleep = sleep
        backend = _VettingBackend(resolve or system_resolve, web.allow_private_networks)
        self._client = httpx.Client(
            transport=_VettedTransport(backend, max_connections=max(4, web.per_host * 4)),
            # Proxies from the environment would make the vetted address the proxy's.
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(web.timeout),
            headers={"User-Agent": web.user_agent, "Accept": ACCEPT},
        )
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._slots_lock = threading.Lock()
        self.requests = 0  # sent, for tests and logs

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._client.close()

    def fetch(self, url: str, *, validators: Validators | None = None) -> Fetched:
        """GET a URL (conditionally when ``validators`` are given), following capped redirects."""
        current = url
        seen: set[str] = set()
        for _hop in range(self.web.max_redirects + 1):
            check_url(current)
            seen.add(current)
            result = self._get_with_retries(current, validators)
            if isinstance(result, Fetched):
                return result
            target = urljoin(current, result)
            if target in seen:
                raise FetchError(f"{_short(url)}: redirect loop at {_short(target)}")
            current = target
        raise FetchError(f"{_short(url)}: more than {self.web.max_redirects} redirects")

    # -- one URL ---------------------------------------------------------------------------------
    def _get_with_retries(self, url: str, validators: Validators | None) -> Fetched | str:
        attempts = max(0, self.web.retries) + 1
        for attempt in range(attempts):
            try:
                return self._get(url, validators)
            except _Retry as retry:
                if attempt + 1 >= attempts:
                    raise FetchError(f"{_short(url)}: {retry}") from None
                delay = self.web.backoff * 2**attempt
                if retry.after is not None:
                    delay = max(delay, min(retry.after, MAX_RETRY_AFTER))
                log.info("fetching %s failed (%s); retrying in %.1f s", _short(url), retry, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")

    def _get(self, url: str, validators: Validators | None) -> Fetched | str:
        """Return the response or a redirect's Location; raise _Retry for transient failures."""
        host = (urlsplit(url).hostname or "").lower()
        headers = validators.headers() if validators else {}
        with self._slot(host):
            self.requests += 1
            started = time.monotonic()
            try:
                with self._client.stream("GET", url, headers=headers) as response:
                    return self._read(url, response, started)
            except _NETWORK_ERRORS as exc:
                if isinstance(exc, (httpx.TimeoutException, httpcore.TimeoutException)):
                    raise _Retry("timed out") from None
                raise _Retry(f"network error: {exc or type(exc).__name__}") from None

    def _read(self, url: str, response: httpx.Response, started: float) -> Fetched | str:
        status = response.status_code
        if status in RETRY_STATUSES:
            raise _Retry(f"HTTP {status}", _retry_after(response.headers.get("Retry-After")))
        if status in (301, 302, 303, 307, 308):
            location = str(response.headers.get("Location") or "")
            if not location:
                raise FetchError(f"{_short(url)}: HTTP {status} without a Location")
            return location
        validators = Validators(response.headers.get("ETag"), response.headers.get("Last-Modified"))
        if status == 304:
            return Fetched(url, 304, "", None, b"", validators)
        if status != 200:
            raise FetchError(f"{_short(url)}: HTTP {status}")
        media, charset = _content_type(response.headers.get("Content-Type", ""))
        if media and media not in TEXT_TYPES and not media.endswith("+xml"):
            raise FetchError(f"{_short(url)}: content type {media} is not a web page or feed")
        limit = self.web.max_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise TooLargeError(f"{_short(url)}: {int(declared):,} bytes is over the {limit:,}-byte limit")
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > limit:
                raise TooLargeError(f"{_short(url)}: cut off at the {limit:,}-byte limit")
            if time.monotonic() - started > self.web.timeout:
                # A server dripping bytes never trips the per-read timeout; this does.
                raise _Retry(f"took longer than {self.web.timeout:g} s")
        if not media and (b"\x00" in body[:8192] or not body.strip()):
            raise FetchError(f"{_short(url)}: the response is not text")
        return Fetched(url, 200, media, charset, bytes(body), validators)

    @contextmanager
    def _slot(self, host: str) -> Iterator[None]:
        with self._slots_lock:
            slot = self._slots.setdefault(host, threading.BoundedSemaphore(max(1, self.web.per_host)))
        with slot:
            yield


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _content_type(value: str) -> tuple[str, str | None]:
    media, _, params = value.partition(";")
    found = re.search(r"charset\s*=\s*\"?([\w.:-]+)", params, re.I)
    return media.strip().lower(), found.group(1) if found else None


def _meta_charset(head: bytes) -> str | None:
    found = re.search(rb"<meta[^>]+charset\s*=\s*[\"']?([\w.:-]+)", head, re.I)
    return found.group(1).decode("ascii") if found else None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _short(url: str, limit: int = 200) -> str:
    """Return a URL fit for a message: credentials dropped, long ones cut."""
    try:
        parts = urlsplit(url)
        if parts.username or parts.password:
            url = parts._replace(netloc=parts.hostname or "").geturl()
    except ValueError:
        pass
    return url if len(url) <= limit else url[: limit - 1] + "…"


def ingest_url(index: NewsIndex, url: str, config: Config) -> IngestReport:
    """Fetch a page or a feed and ingest its articles; readers of ``index`` see them at once."""
    from retrieval.feeds import ingest_source
    from retrieval.newsindex import NewsIndex

    # A separate writer: the caller's index may be answering in other threads, and its
    # in-memory indexes are swapped by refresh() rather than changed under the readers.
    writer = NewsIndex.open(index.config, encoder=index.encoder, create=True)
    try:
        with Fetcher(config.web) as fetcher:
            report = ingest_source(writer, url, fetcher)
    finally:
        writer.close()
    index.refresh()
    return report
