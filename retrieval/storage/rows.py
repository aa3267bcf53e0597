"""Database rows to domain values, the same for every SQL backend."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from retrieval.domain import Article

__all__ = ["Row", "article_from_row", "parse_time"]


def parse_time(value: str | None) -> datetime | None:
    """Return a stored ISO 8601 time as a datetime."""
    return datetime.fromisoformat(value) if value else None


class Row(Protocol):
    """A database row read by column name (sqlite3.Row, psycopg's dict rows)."""

    def __getitem__(self, key: str) -> Any: ...


def article_from_row(row: Row, id_column: str = "id") -> Article:
    """Return the article a row of the articles table (or a query joining it) holds."""
    return Article(
        id=row[id_column],
        url=row["url"],
        text=row["text"],
        title=row["title"],
        source=row["source"],
        published=parse_time(row["published"]),
        language=row["language"],
        fetched_at=parse_time(row["fetched_at"]),
    )
