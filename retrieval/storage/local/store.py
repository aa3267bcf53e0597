"""The SQLite store: articles, passages with their embeddings, questions and feedback.

SQLite is the source of truth. Every write bumps ``meta.generation``; the FAISS and BM25 files
record the generation they were built from, so a reader can tell when they are stale and
rebuild them from here without re-embedding. WAL mode lets one writer and several readers
share the file.

A data directory that cannot be written (a read-only volume, a backup) is opened immutable: it
answers questions and lists articles, and any write is refused with a line that says why.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from retrieval.domain import Article, Passage
from retrieval.errors import NotFoundError, StoreError
from retrieval.models.sentvecs import SentenceVectors
from retrieval.query import Query
from retrieval.storage.base import SourceInfo
from retrieval.storage.local.connect import connect, connect_read_only
from retrieval.storage.local.schema import SCHEMA, SCHEMA_VERSION
from retrieval.storage.rows import article_from_row, parse_time

__all__ = ["Store"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Store:
    """Articles and passages in one SQLite file; safe to share between threads."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = path
        if not path.exists() and not create:
            raise StoreError(f"no store at {path}")
        self._local = threading.local()
        self.write_lock = threading.Lock()
        # SQLite writes beside the database (the -wal and -shm files) even to read it in WAL mode.
        self.read_only = path.exists() and not (os.access(path.parent, os.W_OK) and os.access(path, os.W_OK))
        with self.connection() as con:
            if not self.read_only:
                con.executescript(SCHEMA)
            version = self.get_meta("schema_version")
            if version is not None and int(version) > SCHEMA_VERSION:
                raise StoreError(
                    f"{path} was written by a newer newsqa (schema {version}, this one knows {SCHEMA_VERSION}); upgrade newsqa"
                )
            if version is None or int(version) < SCHEMA_VERSION:
                if self.read_only:
                    raise StoreError(
                        f"{path.parent} is not writable, and {path.name} was written by an older newsqa; "
                        "open it once where it can be written to upgrade it"
                    )
                self._upgrade(con)

    def _upgrade(self, con: sqlite3.Connection) -> None:
        """Bring an older store up to this schema; each step keeps existing rows valid."""
        with self.write_lock:
            con.execute("BEGIN IMMEDIATE")
            try:
                columns = {str(r["name"]) for r in con.execute("PRAGMA table_info(passages)")}
                if "sentences" not in columns:
                    # Passages stored before version 2 have none; answers encode their sentences.
                    con.execute("ALTER TABLE passages ADD COLUMN sentences BLOB")
                self.set_meta("schema_version", str(SCHEMA_VERSION), con)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def _connect(self) -> sqlite3.Connection:
        return connect_read_only(self.path) if self.read_only else connect(self.path)

    def refuse_writes(self) -> None:
        """Raise StoreError when the data directory cannot be written."""
        if self.read_only:
            raise StoreError(f"{self.path.parent} is read-only: newsqa can answer from it but not write to it")

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """Yield this thread's connection."""
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._connect()
            self._local.con = con
        try:
            yield con
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"database error in {self.path}: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Yield a connection inside one write transaction that bumps the generation on commit."""
        self.refuse_writes()
        with self.write_lock, self.connection() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute(
                    "INSERT INTO meta (key, value) VALUES ('generation', '1') ON CONFLICT (key) "
                    "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
                )
                con.execute(
                    "INSERT INTO meta (key, value) VALUES ('updated_at', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (_now(),),
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close this thread's connection."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    # -- meta ----------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        """Return a meta value."""
        with self.connection() as con:
            row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str, con: sqlite3.Connection | None = None) -> None:
        """Set a meta value (inside ``con``'s transaction when given)."""
        sql = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        if con is not None:
            con.execute(sql, (key, value))
            return
        with self.connection() as own:
            own.execute(sql, (key, value))

    def generation(self) -> int:
        """Return the number of committed writes so far."""
        return int(self.get_meta("generation") or 0)

    # -- articles ------------------------------------------------------------------------------
    def find_article(self, id_or_url: str) -> Article:
        """Return the article with this id or URL, else raise NotFoundError."""
        with self.connection() as con:
            row = con.execute(
                "SELECT * FROM articles WHERE id = ? OR url = ? LIMIT 1", (id_or_url, id_or_url)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"no article with id or URL {id_or_url!r}; see `newsqa sources`")
        return article_from_row(row)

    def articles(self, ids: Iterable[str]) -> dict[str, Article]:
        """Return the articles with these ids."""
        wanted = list(dict.fromkeys(ids))
        out: dict[str, Article] = {}
        with self.connection() as con:
            for lo in range(0, len(wanted), 500):
                chunk = wanted[lo : lo + 500]
                marks = ",".join("?" * len(chunk))
                for row in con.execute(f"SELECT * FROM articles WHERE id IN ({marks})", chunk):  # noqa: S608
                    out[row["id"]] = article_from_row(row)
        return out

    def article_state(self, article_id: str) -> tuple[str, str | None] | None:
        """Return ``(content_hash, duplicate_of)`` of a stored article, or None."""
        with self.connection() as con:
            row = con.execute("SELECT content_hash, duplicate_of FROM articles WHERE id = ?", (article_id,)).fetchone()
        return None if row is None else (row["content_hash"], row["duplicate_of"])

    def original_with_hash(self, digest: str, con: sqlite3.Connection) -> str | None:
        """Return the id of an indexed article with exactly this text, if any."""
        row = con.execute(
            "SELECT id FROM articles WHERE content_hash = ? AND duplicate_of IS NULL LIMIT 1", (digest,)
        ).fetchone()
        return None if row is None else str(row["id"])

    def copies_of(self, ids: Iterable[str]) -> dict[str, list[Article]]:
        """Return, for each article id, the stored copies of it under other URLs."""
        wanted = list(dict.fromkeys(ids))
        out: dict[str, list[Article]] = {}
        if not wanted:
            return out
        marks = ",".join("?" * len(wanted))
        with self.connection() as con:
            sql = f"SELECT * FROM articles WHERE duplicate_of IN ({marks}) ORDER BY published, url"  # noqa: S608
            for row in con.execute(sql, wanted):
                out.setdefault(row["duplicate_of"], []).append(article_from_row(row))
        return out

    def put_article(self, con: sqlite3.Connection, article: Article, digest: str, duplicate_of: str | None) -> None:
        """Insert or replace an article row (passages are handled separately)."""
        con.execute(
            "INSERT INTO articles (id, url, title, source, published, language, text, content_hash, duplicate_of, fetched_at, added_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET url = excluded.url,"
            " title = excluded.title, source = excluded.source, published = excluded.published,"
            " language = excluded.language, text = excluded.text, content_hash = excluded.content_hash,"
            " duplicate_of = excluded.duplicate_of, fetched_at = excluded.fetched_at",
            (
                article.id,
                article.url,
                article.title,
                article.source,
                article.published.isoformat() if article.published else None,
                article.language,
                article.text,
                digest,
                duplicate_of,
                article.fetched_at.isoformat() if article.fetched_at else None,
                _now(),
            ),
        )

    def delete_passages(self, con: sqlite3.Connection, article_id: str) -> list[int]:
        """Delete an article's passages and return their ids."""
        ids = [int(r[0]) for r in con.execute("SELECT id FROM passages WHERE article_id = ?", (article_id,))]
        con.execute("DELETE FROM passages WHERE article_id = ?", (article_id,))
        return ids

    def add_passages(
        self,
        con: sqlite3.Connection,
        article_id: str,
        spans: Sequence[tuple[int, int, int, str]],
        vectors: np.ndarray,
        sentences: Sequence[SentenceVectors | None] | None = None,
    ) -> list[int]:
        """Insert passages ``(ordinal, start, end, text)`` with their vectors; return their ids."""
        ids = []
        extra = sentences if sentences is not None else [None] * len(spans)
        for (ordinal, start, end, text), vec, sent in zip(spans, vectors, extra, strict=True):
            cur = con.execute(
                'INSERT INTO passages (article_id, ordinal, start, "end", text, embedding, sentences)'
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    article_id,
                    ordinal,
                    start,
                    end,
                    text,
                    np.ascontiguousarray(vec, dtype=np.float32).tobytes(),
                    None if sent is None else sent.pack(),
                ),
            )
            ids.append(int(cur.lastrowid or 0))
        return ids

    def remove_article(self, con: sqlite3.Connection, article_id: str) -> tuple[list[int], str | None]:
        """Delete an article; its passages move to a stored copy if there is one.

        Returns the ids of passages that are gone and the id of the copy that took them over.
        """
        heir = con.execute(
            "SELECT id FROM articles WHERE duplicate_of = ? ORDER BY added_at, id LIMIT 1", (article_id,)
        ).fetchone()
        if heir is not None:
            # A copy has the same text, so the passages, offsets and vectors stay valid for it.
            heir_id = str(heir["id"])
            con.execute("UPDATE passages SET article_id = ? WHERE article_id = ?", (heir_id, article_id))
            con.execute("UPDATE articles SET duplicate_of = NULL WHERE id = ?", (heir_id,))
            con.execute("UPDATE articles SET duplicate_of = ? WHERE duplicate_of = ?", (heir_id, article_id))
            con.execute("DELETE FROM articles WHERE id = ?", (article_id,))
            return [], heir_id
        gone = self.delete_passages(con, article_id)
        con.execute("DELETE FROM articles WHERE id = ?", (article_id,))
        return gone, None

    # -- passages ------------------------------------------------------------------------------
    def passages(self, ids: Iterable[int]) -> dict[int, Passage]:
        """Return the passages with these ids."""
        wanted = [int(i) for i in dict.fromkeys(ids)]
        out: dict[int, Passage] = {}
        with self.connection() as con:
            for lo in range(0, len(wanted), 500):
                chunk = wanted[lo : lo + 500]
                marks = ",".join("?" * len(chunk))
                for row in con.execute(
                    f'SELECT id, article_id, ordinal, start, "end", text FROM passages WHERE id IN ({marks})',  # noqa: S608
                    chunk,
                ):
                    out[row["id"]] = Passage(
                        row["id"], row["article_id"], row["ordinal"], row["start"], row["end"], row["text"]
                    )
        return out

    def iter_passages(self, batch: int = 10_000) -> Iterator[tuple[np.ndarray, list[str], np.ndarray]]:
        """Yield ``(ids, texts, vectors)`` in id order, for rebuilding indexes (texts as BM25 indexes them)."""
        last = -1
        with self.connection() as con:
            while True:
                rows = con.execute(
                    "SELECT id, text, embedding FROM passages WHERE id > ? ORDER BY id LIMIT ?",
                    (last, batch),
                ).fetchall()
                if not rows:
                    return
                ids = np.array([r["id"] for r in rows], dtype=np.int64)
                texts = [r["text"] for r in rows]
                vectors = np.vstack([np.frombuffer(r["embedding"], dtype=np.float32) for r in rows])
                last = int(ids[-1])
                yield ids, texts, vectors

    def passage_vectors(self, ids: Sequence[int]) -> np.ndarray:
        """Return the stored vectors of these passages, in order."""
        with self.connection() as con:
            marks = ",".join("?" * len(ids))
            rows = {
                r["id"]: r["embedding"]
                for r in con.execute(f"SELECT id, embedding FROM passages WHERE id IN ({marks})", list(ids))  # noqa: S608
            }
        return np.vstack([np.frombuffer(rows[i], dtype=np.float32) for i in ids])

    def sentence_vectors(self, ids: Iterable[int]) -> dict[int, SentenceVectors]:
        """Return the stored sentence vectors of these passages (those stored without have none)."""
        wanted = [int(i) for i in dict.fromkeys(ids)]
        if not wanted:
            return {}
        with self.connection() as con:
            marks = ",".join("?" * len(wanted))
            rows = con.execute(
                f"SELECT id, sentences FROM passages WHERE id IN ({marks}) AND sentences IS NOT NULL",  # noqa: S608
                wanted,
            ).fetchall()
        return {int(r["id"]): SentenceVectors.unpack(r["sentences"]) for r in rows}

    def articles_without_passages(self) -> list[str]:
        """Return the ids of articles (not copies) that have no passages: nothing of them is searchable."""
        with self.connection() as con:
            rows = con.execute(
                "SELECT a.id FROM articles a WHERE a.duplicate_of IS NULL"
                " AND NOT EXISTS (SELECT 1 FROM passages p WHERE p.article_id = a.id) ORDER BY a.id"
            ).fetchall()
        return [str(r["id"]) for r in rows]

    def any_article(self, query: Query) -> bool:
        """Return True when some stored article passes the query's filters."""
        with self.connection() as con:
            for row in con.execute("SELECT source, url, published FROM articles"):
                if query.admits(row["source"], row["url"], parse_time(row["published"])):
                    return True
        return False

    def counts(self) -> tuple[int, int]:
        """Return ``(articles, passages)``."""
        with self.connection() as con:
            a = con.execute("SELECT COUNT(*) FROM articles").fetchone()[0]
            p = con.execute("SELECT COUNT(*) FROM passages").fetchone()[0]
        return int(a), int(p)

    def sources(self, limit: int | None = None, offset: int = 0) -> list[SourceInfo]:
        """Return articles newest first with their passage counts."""
        sql = (
            "SELECT a.*, (SELECT COUNT(*) FROM passages p WHERE p.article_id = COALESCE(a.duplicate_of, a.id)) AS n"
            " FROM articles a ORDER BY COALESCE(a.published, a.added_at) DESC, a.id LIMIT ? OFFSET ?"
        )
        with self.connection() as con:
            rows = con.execute(sql, (-1 if limit is None else limit, offset)).fetchall()
        return [SourceInfo(article_from_row(r), int(r["n"])) for r in rows]

    def check_rows(self) -> Iterator[tuple[int, str, int, int, str, str | None]]:
        """Yield ``(passage id, article id, start, end, passage text, article text)`` for checking."""
        with self.connection() as con:
            yield from con.execute(
                'SELECT p.id, p.article_id, p.start, p."end", p.text, a.text FROM passages p'
                " LEFT JOIN articles a ON a.id = p.article_id ORDER BY p.id"
            )
