"""What was fetched before: a URL's HTTP validators and a feed entry's fingerprint.

Kept by each storage backend in its own store (``Backend.fetch_cache``), so every process that
ingests into one store knows what the others fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = ["CacheRow", "FetchCache", "Validators"]


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
class CacheRow:
    """What is remembered about one fetched URL."""

    url: str
    validators: Validators
    fingerprint: str | None = None  # of a feed entry
    article_id: str | None = None  # of a page


class FetchCache(Protocol):
    """ETag/Last-Modified per URL and feed-entry fingerprints, in the store's database."""

    def get(self, url: str) -> CacheRow | None:
        """Return what is remembered about a URL."""
        ...

    def fetched_at(self, url: str) -> datetime | None:
        """Return when ``url`` was last fetched in full or found unchanged (a feed: polled to the end)."""
        ...

    def put(self, rows: list[CacheRow]) -> None:
        """Remember these rows, all in one transaction (answers do not change: no new generation)."""
        ...

    def validators_for_page(self, url: str) -> Validators | None:
        """Return a page's validators if its article is still stored (else it is fetched whole)."""
        ...
