"""Fetch pages and feeds from URLs that users or the config chose, safely.

Only http and https; every connection goes to an address that was resolved and vetted just
before connecting (so a name cannot resolve to a public address for the check and a private
one for the request); redirects are followed by hand, capped, and each hop is vetted again;
bodies are read as a stream and cut off at ``web.max_bytes`` and at ``web.timeout`` seconds;
only text content types are read; 5xx and 429 are retried with back-off; at most
``web.per_host`` requests run against one host at a time.

The errors (``retrieval.ingest.vetting``), under :class:`~retrieval.errors.LoaderError`::

    FetchError          the URL could not be fetched (network, HTTP status, timeout)
    ├── BlockedURLError a URL or address the safety rules refuse
    └── TooLargeError   the body is over the size cap
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from retrieval.config import WebConfig
from retrieval.ingest.cache import Validators
from retrieval.ingest.vetting import (
    BlockedURLError,
    FetchError,
    Resolver,
    TooLargeError,
    VettedTransport,
    VettingBackend,
    check_address,
    check_url,
    short_url,
    system_resolve,
    vet_url,
)

__all__ = [
    "BlockedURLError",
    "FetchError",
    "Fetched",
    "Fetcher",
    "Resolver",
    "TooLargeError",
    "check_address",
    "check_url",
    "vet_url",
]

log = logging.getLogger(__name__)

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
        backend = VettingBackend(resolve or system_resolve, web.allow_private_networks)
        self._client = httpx.Client(
            transport=VettedTransport(backend, max_connections=max(4, web.per_host * 4)),
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
                raise FetchError(f"{short_url(url)}: redirect loop at {short_url(target)}")
            current = target
        raise FetchError(f"{short_url(url)}: more than {self.web.max_redirects} redirects")

    # -- one URL ---------------------------------------------------------------------------------
    def _get_with_retries(self, url: str, validators: Validators | None) -> Fetched | str:
        attempts = max(0, self.web.retries) + 1
        for attempt in range(attempts):
            try:
                return self._get(url, validators)
            except _Retry as retry:
                if attempt + 1 >= attempts:
                    raise FetchError(f"{short_url(url)}: {retry}") from None
                delay = self.web.backoff * 2**attempt
                if retry.after is not None:
                    delay = max(delay, min(retry.after, MAX_RETRY_AFTER))
                log.info("fetching %s failed (%s); retrying in %.1f s", short_url(url), retry, delay)
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
                raise FetchError(f"{short_url(url)}: HTTP {status} without a Location")
            return location
        validators = Validators(response.headers.get("ETag"), response.headers.get("Last-Modified"))
        if status == 304:
            return Fetched(url, 304, "", None, b"", validators)
        if status != 200:
            raise FetchError(f"{short_url(url)}: HTTP {status}")
        media, charset = _content_type(response.headers.get("Content-Type", ""))
        if media and media not in TEXT_TYPES and not media.endswith("+xml"):
            raise FetchError(f"{short_url(url)}: content type {media} is not a web page or feed")
        limit = self.web.max_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise TooLargeError(f"{short_url(url)}: {int(declared):,} bytes is over the {limit:,}-byte limit")
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > limit:
                raise TooLargeError(f"{short_url(url)}: cut off at the {limit:,}-byte limit")
            if time.monotonic() - started > self.web.timeout:
                # A server dripping bytes never trips the per-read timeout; this does.
                raise _Retry(f"took longer than {self.web.timeout:g} s")
        if not media and (b"\x00" in body[:8192] or not body.strip()):
            raise FetchError(f"{short_url(url)}: the response is not text")
        return Fetched(url, 200, media, charset, bytes(body), validators)

    @contextmanager
    def _slot(self, host: str) -> Iterator[None]:
        with self._slots_lock:
            slot = self._slots.setdefault(host, threading.BoundedSemaphore(max(1, self.web.per_host)))
        with slot:
            yield


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
