"""What was fetched before (ETag/Last-Modified, feed-entry fingerprints), in the PostgreSQL database."""

from __future__ import annotations

from datetime import UTC, datetime

from retrieval.ingest.cache import CacheRow, Validators
from retrieval.storage.pg.store import PgStore
from retrieval.storage.rows import parse_time

__all__ = ["PgFetchCache"]


class PgFetchCache:
    """The ``web_fetches`` table of the database (made by migration 1), shared by every process."""

    def __init__(self, store: PgStore) -> None:
        self.store = store

    def get(self, url: str) -> CacheRow | None:
        """Return what is remembered about a URL."""
        with self.store.db.connection() as con:
            row = con.execute(
                "SELECT etag, last_modified, fingerprint, article_id FROM web_fetches WHERE url = %s", (url,)
            ).fetchone()
        if row is None:
            return None
        return CacheRow(url, Validators(row[0], row[1]), row[2], row[3])

    def fetched_at(self, url: str) -> datetime | None:
        """Return when ``url`` was last fetched in full or found unchanged."""
        with self.store.db.connection() as con:
            row = con.execute("SELECT fetched_at FROM web_fetches WHERE url = %s", (url,)).fetchone()
        return parse_time(row[0]) if row else None

    def put(self, rows: list[CacheRow]) -> None:
        """Remember these rows, all in one transaction (no new generation: answers do not change)."""
        if not rows:
            return
        now = datetime.now(UTC).isoformat()
        with self.store.db.transaction() as con, con.cursor() as cur:
            cur.executemany(
                "INSERT INTO web_fetches (url, etag, last_modified, fingerprint, article_id, fetched_at)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (url) DO UPDATE SET etag = excluded.etag,"
                " last_modified = excluded.last_modified, fingerprint = excluded.fingerprint,"
                " article_id = excluded.article_id, fetched_at = excluded.fetched_at",
                [
                    (r.url, r.validators.etag, r.validators.last_modified, r.fingerprint, r.article_id, now)
                    for r in rows
                ],
            )

    def validators_for_page(self, url: str) -> Validators | None:
        """Return a page's validators if its article is still stored (else fetch it whole)."""
        row = self.get(url)
        if row is None or row.article_id is None or self.store.article_state(row.article_id) is None:
            return None
        return row.validators
