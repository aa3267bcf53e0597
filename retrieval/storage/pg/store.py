"""The PostgreSQL store: articles, passages and the questions log in tables shared by many processes.

Each passage row carries its vector (pgvector, HNSW index) and its terms (a ``tsvector`` of
newsqa's own tokens with their positions, GIN index), so both indexes change in the same
transaction as the rows and there is nothing to rebuild.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import numpy as np

from retrieval.domain import Article, Passage
from retrieval.errors import EmptyIndexError, NotFoundError, StoreError
from retrieval.models.sentvecs import SentenceVectors
from retrieval.query import Query
from retrieval.search.tokens import tokenize
from retrieval.storage.base import SourceInfo
from retrieval.storage.pg.connect import Database
from retrieval.storage.pg.literals import terms_literal, vector_literal
from retrieval.storage.pg.migrations import (
    INDEX_DDL,
    LATEST,
    check_version,
    current_version,
    dimension_ddl,
    upgrade,
    wait_for_migrations,
)
from retrieval.storage.rows import article_from_row, parse_time

__all__ = ["PgStore"]

# Writers of one database take this advisory lock for a whole ingest or removal, as local
# writers take the data directory's lock file.
WRITER_LOCK = 7_245_102

_ARTICLE_COLUMNS = "id, url, title, source, published, language, text, fetched_at, duplicate_of"


class PgStore:
    """Articles and passages in PostgreSQL; safe to share between threads and processes.

    Methods that take ``con`` run inside the caller's :meth:`transaction`.
    """

    def __init__(self, db: Database, *, create: bool = False) -> None:
        self.db = db
        with db.connection() as con:
            version = current_version(con)
            if 0 < version < LATEST:
                # Another process may be setting this database up right now (each migration
                # commits on its own): wait for it to finish before judging the version.
                wait_for_migrations(con)
                version = current_version(con)
            if version == 0:
                if not create:
                    raise EmptyIndexError("No newsqa tables in the database yet — run `newsqa ingest PATH` first")
                upgrade(con)  # a fresh database is set up by its first writer, like a new data directory
            check_version(con)

    @classmethod
    def upgrade(cls, db: Database) -> list[str]:
        """Apply pending migrations; return their descriptions."""
        with db.connection() as con:
            return [f"{m.version}: {m.description}" for m in upgrade(con)]

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """Lend a connection to the primary (autocommit)."""
        with self.db.connection() as con:
            yield con

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """Yield a connection inside one transaction that bumps the generation on commit."""
        with self.db.transaction() as con:
            yield con
            con.execute("UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'generation'")
            con.execute(
                "INSERT INTO meta (key, value) VALUES ('updated_at', %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (datetime.now(timezone.utc).isoformat(timespec="seconds"),),
            )

    @contextmanager
    def writing(self, wait: float = 600.0) -> Iterator[None]:
        """Hold the database-wide writer lock (one ingest or removal at a time, across machines).

        The lock belongs to the session: if this process dies, the database releases it.
        """
        with self.db.connection() as con:
            deadline = time.monotonic() + wait
            while not con.execute("SELECT pg_try_advisory_lock(%s)", (WRITER_LOCK,)).fetchone()[0]:
                if time.monotonic() >= deadline:
                    raise StoreError("another newsqa process is writing to the database; try again when it is done")
                time.sleep(0.2)
            try:
                yield
            finally:
                con.execute("SELECT pg_advisory_unlock(%s)", (WRITER_LOCK,))

    def close(self) -> None:
        """Nothing to do per thread: connections go back to the pool after each use."""

    # -- meta ----------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        """Return a meta value."""
        # From the primary: writers decide on these (encoder, dimension, generation).
        with self.db.connection() as con:
            row = con.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str, con: Any = None) -> None:
        """Set a meta value (inside ``con``'s transaction when given)."""
        sql = "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        if con is not None:
            con.execute(sql, (key, value))
            return
        with self.db.connection() as own:
            own.execute(sql, (key, value))

    def set_dimension(self, con: Any, dim: int, *, index: bool = True) -> None:
        """Fix the vector column's dimension and (with ``index``) build its HNSW index."""
        for statement in dimension_ddl(dim):
            con.execute(statement)
        if index:
            con.execute(INDEX_DDL)

    def build_vector_index(self, con: Any) -> None:
        """Build the HNSW index (after a bulk copy: faster than growing it row by row)."""
        con.execute("SET LOCAL statement_timeout = 0")
        con.execute(INDEX_DDL)

    def fill_postings(self, con: Any) -> None:
        """Write the postings and term statistics of every passage afresh, in key order.

        After a bulk copy with the postings trigger disabled: one sorted insert builds the key
        index in order, where the trigger would have inserted into it at random, batch by batch.
        """
        con.execute("SET LOCAL statement_timeout = 0")
        con.execute("TRUNCATE postings, term_stats")
        con.execute(
            "INSERT INTO postings (term, passage_id, tf, dl)"
            " SELECT u.lexeme, p.id, cardinality(u.positions), p.n_terms"
            " FROM passages p CROSS JOIN LATERAL unnest(p.terms) u ORDER BY 1, 2"
        )
        con.execute(
            "INSERT INTO term_stats (term, df, max_tf, min_dl)"
            " SELECT term, count(*), max(tf), min(dl) FROM postings GROUP BY term"
        )

    def generation(self) -> int:
        """Return the number of committed writes so far."""
        return int(self.get_meta("generation") or 0)

    # -- articles ------------------------------------------------------------------------------
    def _rows(self, sql: str, params: Sequence[Any] = (), *, read_only: bool = True) -> list[dict[str, Any]]:
        with self.db.connection(read_only=read_only) as con, con.cursor(row_factory=self.db.dict_row) as cur:
            return list(cur.execute(sql, params).fetchall())

    def find_article(self, id_or_url: str) -> Article:
        """Return the article with this id or URL, else raise NotFoundError."""
        rows = self._rows(
            f"SELECT {_ARTICLE_COLUMNS} FROM articles WHERE id = %s OR url = %s LIMIT 1",  # noqa: S608
            (id_or_url, id_or_url),
            read_only=False,  # removals look articles up: never through a lagging replica
        )
        if not rows:
            raise NotFoundError(f"no article with id or URL {id_or_url!r}; see `newsqa sources`")
        return article_from_row(rows[0])

    def articles(self, ids: Iterable[str]) -> dict[str, Article]:
        """Return the articles with these ids."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        rows = self._rows(f"SELECT {_ARTICLE_COLUMNS} FROM articles WHERE id = ANY(%s)", (wanted,))  # noqa: S608
        return {r["id"]: article_from_row(r) for r in rows}

    def article_state(self, article_id: str) -> tuple[str, str | None] | None:
        """Return ``(content_hash, duplicate_of)`` of a stored article, or None."""
        rows = self._rows(
            "SELECT content_hash, duplicate_of FROM articles WHERE id = %s", (article_id,), read_only=False
        )
        return None if not rows else (rows[0]["content_hash"], rows[0]["duplicate_of"])

    def original_with_hash(self, digest: str, con: Any) -> str | None:
        """Return the id of an indexed article with exactly this text, if any."""
        row = con.execute(
            "SELECT id FROM articles WHERE content_hash = %s AND duplicate_of IS NULL LIMIT 1", (digest,)
        ).fetchone()
        return None if row is None else str(row[0])

    def copies_of(self, ids: Iterable[str]) -> dict[str, list[Article]]:
        """Return, for each article id, the stored copies of it under other URLs."""
        wanted = list(dict.fromkeys(ids))
        out: dict[str, list[Article]] = {}
        if not wanted:
            return out
        rows = self._rows(
            f"SELECT {_ARTICLE_COLUMNS} FROM articles WHERE duplicate_of = ANY(%s)"  # noqa: S608
            " ORDER BY published NULLS FIRST, url",
            (wanted,),
        )
        for row in rows:
            out.setdefault(row["duplicate_of"], []).append(article_from_row(row))
        return out

    def put_article(self, con: Any, article: Article, digest: str, duplicate_of: str | None) -> None:
        """Insert or replace an article row (passages are handled separately)."""
        con.execute(
            "INSERT INTO articles (id, url, title, source, published, published_at, language, text, content_hash,"
            " duplicate_of, fetched_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET url = excluded.url, title = excluded.title, source = excluded.source,"
            " published = excluded.published, published_at = excluded.published_at, language = excluded.language,"
            " text = excluded.text, content_hash = excluded.content_hash, duplicate_of = excluded.duplicate_of,"
            " fetched_at = excluded.fetched_at",
            (
                article.id,
                article.url,
                article.title,
                article.source,
                article.published.isoformat() if article.published else None,
                article.published,
                article.language,
                article.text,
                digest,
                duplicate_of,
                article.fetched_at.isoformat() if article.fetched_at else None,
            ),
        )

    def delete_passages(self, con: Any, article_id: str) -> list[int]:
        """Delete an article's passages and return their ids."""
        rows = con.execute("DELETE FROM passages WHERE article_id = %s RETURNING id", (article_id,)).fetchall()
        return sorted(int(r[0]) for r in rows)

    def add_passages(
        self,
        con: Any,
        article_id: str,
        spans: Sequence[tuple[int, int, int, str]],
        vectors: np.ndarray,
        sentences: Sequence[SentenceVectors | None] | None = None,
    ) -> list[int]:
        """Insert passages ``(ordinal, start, end, text)`` with their vectors and terms; return their ids.

        The terms are the passage's own text, without the article title (as the local BM25 index
        has them; the title is in the vectors only). The article row must already be written in
        this transaction (the passages refer to it).
        """
        if not spans:
            return []
        tokens = tokenize([text for _, _, _, text in spans])
        rows = [
            (article_id, ordinal, start, end, text, terms_literal(toks), len(toks), vector_literal(vec))
            for (ordinal, start, end, text), toks, vec in zip(spans, tokens, vectors, strict=True)
        ]
        ids: list[int] = []
        with con.cursor() as cur:
            cur.executemany(
                'INSERT INTO passages (article_id, ordinal, start, "end", text, terms, n_terms, embedding)'
                " VALUES (%s, %s, %s, %s, %s, %s::tsvector, %s, %s::vector) RETURNING id",
                rows,
                returning=True,
            )
            while True:
                ids.append(int(cur.fetchone()[0]))
                if not cur.nextset():
                    break
            extra = sentences if sentences is not None else [None] * len(spans)
            packed = [(pid, sent.pack()) for pid, sent in zip(ids, extra, strict=True) if sent is not None]
            if packed:
                cur.executemany("INSERT INTO passage_sentences (passage_id, sentences) VALUES (%s, %s)", packed)
        return ids

    def remove_article(self, con: Any, article_id: str) -> tuple[list[int], str | None]:
        """Delete an article; its passages move to a stored copy if there is one.

        Returns the ids of passages that are gone and the id of the copy that took them over.
        """
        heir = con.execute(
            "SELECT id FROM articles WHERE duplicate_of = %s ORDER BY added_at, id LIMIT 1", (article_id,)
        ).fetchone()
        if heir is not None:
            # A copy has the same text, so the passages, offsets, terms and vectors stay valid for
            # it (the vectors hold the original's title, as the local FAISS index does).
            heir_id = str(heir[0])
            con.execute("UPDATE passages SET article_id = %s WHERE article_id = %s", (heir_id, article_id))
            con.execute("UPDATE articles SET duplicate_of = NULL WHERE id = %s", (heir_id,))
            con.execute("UPDATE articles SET duplicate_of = %s WHERE duplicate_of = %s", (heir_id, article_id))
            con.execute("DELETE FROM articles WHERE id = %s", (article_id,))
            return [], heir_id
        gone = self.delete_passages(con, article_id)
        con.execute("DELETE FROM articles WHERE id = %s", (article_id,))
        return gone, None

    # -- passages ------------------------------------------------------------------------------
    def passages(self, ids: Iterable[int]) -> dict[int, Passage]:
        """Return the passages with these ids."""
        wanted = [int(i) for i in dict.fromkeys(ids)]
        if not wanted:
            return {}
        rows = self._rows(
            'SELECT id, article_id, ordinal, start, "end", text FROM passages WHERE id = ANY(%s)', (wanted,)
        )
        return {
            int(r["id"]): Passage(int(r["id"]), r["article_id"], r["ordinal"], r["start"], r["end"], r["text"])
            for r in rows
        }

    def sentence_vectors(self, ids: Iterable[int]) -> dict[int, SentenceVectors]:
        """Return the stored sentence vectors of these passages (those stored without have none)."""
        wanted = [int(i) for i in dict.fromkeys(ids)]
        if not wanted:
            return {}
        rows = self._rows("SELECT passage_id, sentences FROM passage_sentences WHERE passage_id = ANY(%s)", (wanted,))
        return {int(r["passage_id"]): SentenceVectors.unpack(bytes(r["sentences"])) for r in rows}

    def articles_without_passages(self) -> list[str]:
        """Return the ids of articles (not copies) that have no passages: nothing of them is searchable."""
        rows = self._rows(
            "SELECT a.id FROM articles a WHERE a.duplicate_of IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM passages p WHERE p.article_id = a.id) ORDER BY a.id",
            read_only=False,
        )
        return [str(r["id"]) for r in rows]

    def any_article(self, query: Query) -> bool:
        """Return True when some stored article passes the query's filters."""
        rows = self._rows("SELECT source, url, published FROM articles")
        return any(query.admits(r["source"], r["url"], parse_time(r["published"])) for r in rows)

    def counts(self) -> tuple[int, int]:
        """Return ``(articles, passages)``."""
        rows = self._rows(
            "SELECT (SELECT count(*) FROM articles) AS a, (SELECT count(*) FROM passages) AS p", read_only=False
        )
        return int(rows[0]["a"]), int(rows[0]["p"])

    def sources(self, limit: int | None = None, offset: int = 0) -> list[SourceInfo]:
        """Return articles newest first with their passage counts."""
        rows = self._rows(
            f"SELECT {_ARTICLE_COLUMNS}, (SELECT count(*) FROM passages p"  # noqa: S608
            " WHERE p.article_id = COALESCE(a.duplicate_of, a.id)) AS n"
            " FROM articles a ORDER BY COALESCE(a.published_at, a.added_at) DESC, a.id LIMIT %s OFFSET %s",
            (limit, offset),
        )
        return [SourceInfo(article_from_row(r), int(r["n"])) for r in rows]

    def check_rows(self) -> Iterator[tuple[int, str, int, int, str, str | None]]:
        """Yield ``(passage id, article id, start, end, passage text, article text)`` for checking."""
        rows = self._rows(
            'SELECT p.id, p.article_id, p.start, p."end", p.text, a.text AS article_text FROM passages p'
            " LEFT JOIN articles a ON a.id = p.article_id ORDER BY p.id",
            read_only=False,
        )
        for r in rows:
            yield int(r["id"]), r["article_id"], r["start"], r["end"], r["text"], r["article_text"]
