"""The local backend's fetch cache: the ``web_fetches`` table of the SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime

from retrieval.ingest.cache import CacheRow, Validators
from retrieval.storage.local.store import Store
from retrieval.storage.rows import parse_time

__all__ = ["SqliteFetchCache"]


class SqliteFetchCache:
    """ETag/Last-Modified per URL and feed-entry fingerprints, in the store's database."""

    def __init__(self, store: Store) -> None:
        self.store = store
        with store.connection() as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS web_fetches (url TEXT PRIMARY KEY, etag TEXT, "
                "last_modified TEXT, fingerprint TEXT, article_id TEXT, fetched_at TEXT NOT NULL)"
            )

    def get(self, url: str) -> CacheRow | None:
        """Return what is remembered about a URL."""
        with self.store.connection() as con:
            row = con.execute(
                "SELECT etag, last_modified, fingerprint, article_id FROM web_fetches WHERE url = ?",
                (url,),
            ).fetchone()
        if row is None:
            return None
        return CacheRow(url, Validators(row[0], row[1]), row[2], row[3])

    def fetched_at(self, url: str) -> datetime | None:
        """Return when ``url`` was last fetched in full or found unchanged (a feed: polled to the end)."""
        with self.store.connection() as con:
            row = con.execute("SELECT fetched_at FROM web_fetches WHERE url = ?", (url,)).fetchone()
        return parse_time(row[0]) if row else None

    def put(self, rows: list[CacheRow]) -> None:
        """Remember these rows, all in one transaction."""
        if not rows:
            return
        now = datetime.now(UTC).isoformat()
        with self.store.connection() as con:
            # Not store.transaction(): that bumps the generation and makes every reader reload.
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany(
                    "INSERT INTO web_fetches (url, etag, last_modified, fingerprint, article_id, fetched_at)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (url) DO UPDATE SET etag = excluded.etag,"
                    " last_modified = excluded.last_modified, fingerprint = excluded.fingerprint,"
                    " article_id = excluded.article_id, fetched_at = excluded.fetched_at",
                    [
                        (r.url, r.validators.etag, r.validators.last_modified, r.fingerprint, r.article_id, now)
                        for r in rows
                    ],
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def validators_for_page(self, url: str) -> Validators | None:
        """Return a page's validators if its article is still stored (else fetch it whole)."""
        row = self.get(url)
        if row is None or row.article_id is None or self.store.article_state(row.article_id) is None:
            return None
        return row.validators
