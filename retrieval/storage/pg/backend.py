"""The PostgreSQL backend: articles, passages and both indexes in one database shared by every
process and machine; the indexes change with the rows, so there is nothing to save or reload."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from retrieval.config import Config
from retrieval.domain import Article
from retrieval.models.sentvecs import SentenceVectors
from retrieval.query import Query
from retrieval.storage.base import CheckReport, CorpusDump, SourceInfo, TransferReport, UsageStats, passage_problems
from retrieval.storage.pg.connect import Database
from retrieval.storage.pg.fetchcache import PgFetchCache
from retrieval.storage.pg.locks import PgCoordinator
from retrieval.storage.pg.migrations import current_version
from retrieval.storage.pg.questions import PgQuestionLog
from retrieval.storage.pg.search import PgRetriever
from retrieval.storage.pg.store import PgStore
from retrieval.storage.pg.transfer import dump_database, load_database

__all__ = ["PgBackend", "open_backend", "upgrade_schema"]


def open_backend(config: Config, *, create: bool = False) -> PgBackend:
    """Open the configured database; with ``create`` set up a fresh one's schema."""
    db = Database(config.storage)
    try:
        return PgBackend(config, PgStore(db, create=create))
    except BaseException:
        db.close()
        raise


def upgrade_schema(config: Config) -> tuple[list[str], int]:
    """Apply the schema migrations the configured database lacks; return them and the version now."""
    db = Database(config.storage)
    try:
        applied = PgStore.upgrade(db)
        with db.connection() as con:
            return applied, current_version(con)
    finally:
        db.close()


class PgTransaction:
    """One database transaction of a writer."""

    def __init__(self, store: PgStore, con: Any) -> None:
        self.store = store
        self.con = con

    def original_with_hash(self, digest: str) -> str | None:
        """Return the id of an indexed article with exactly this text, if any."""
        return self.store.original_with_hash(digest, self.con)

    def put_article(self, article: Article, digest: str, duplicate_of: str | None) -> None:
        """Insert or replace an article row."""
        self.store.put_article(self.con, article, digest, duplicate_of)

    def delete_passages(self, article_id: str) -> None:
        """Delete an article's passages (their postings go with them, by trigger)."""
        self.store.delete_passages(self.con, article_id)

    def add_passages(
        self,
        article_id: str,
        spans: Sequence[tuple[int, int, int, str]],
        vectors: np.ndarray,
        sentences: Sequence[SentenceVectors | None],
    ) -> None:
        """Insert passages with their vectors, terms and sentence vectors."""
        self.store.add_passages(self.con, article_id, spans, vectors, sentences)

    def remove_article(self, article_id: str) -> None:
        """Delete an article (a stored copy inherits its passages)."""
        self.store.remove_article(self.con, article_id)


class PgWriter:
    """A writer holding the database-wide writer lock."""

    def __init__(self, store: PgStore) -> None:
        self.store = store

    def article_state(self, article_id: str) -> tuple[str, str | None] | None:
        """Return ``(content_hash, duplicate_of)`` of a stored article, or None."""
        return self.store.article_state(article_id)

    def record_encoder(self, identity: str, dim: int) -> None:
        """Record the encoder and fix the vector column's dimension (with its HNSW index)."""
        with self.store.transaction() as con:
            self.store.set_meta("encoder", identity, con)
            self.store.set_meta("dim", str(dim), con)
            self.store.set_dimension(con, dim)

    @contextmanager
    def transaction(self) -> Iterator[PgTransaction]:
        """Yield one transaction; pgvector's and the postings' indexes change with its rows."""
        with self.store.transaction() as con:
            yield PgTransaction(self.store, con)


class PgBackend:
    """Articles, passages and both indexes in one PostgreSQL database."""

    where = "the database"

    def __init__(self, config: Config, store: PgStore) -> None:
        self.config = config
        self.store = store
        self.log = PgQuestionLog(store)
        self._seen_generation = store.generation()

    def get_meta(self, key: str) -> str | None:
        """Return a meta value of the database."""
        return self.store.get_meta(key)

    def retriever(self) -> PgRetriever:
        """Return a retriever that searches in the database (always its newest rows)."""
        return PgRetriever(self.store, self.config.search)

    def refresh(self) -> bool:
        """Return True when anyone wrote since the last call (answers always read the newest data anyway)."""
        gen = self.store.generation()
        changed = gen != self._seen_generation
        self._seen_generation = gen
        return changed

    def sentence_vectors(self, passage_ids: Iterable[int]) -> dict[int, SentenceVectors]:
        """Return the stored sentence vectors of these passages."""
        return self.store.sentence_vectors(passage_ids)

    def copies_of(self, article_ids: Iterable[str]) -> dict[str, list[Article]]:
        """Return the stored copies of these articles."""
        return self.store.copies_of(article_ids)

    def find_article(self, id_or_url: str) -> Article:
        """Return the article with this id or URL."""
        return self.store.find_article(id_or_url)

    def sources(self, limit: int | None, offset: int) -> list[SourceInfo]:
        """Return articles newest first with their passage counts."""
        return self.store.sources(limit, offset)

    def counts(self) -> tuple[int, int]:
        """Return ``(articles, passages)``."""
        return self.store.counts()

    def articles_without_passages(self) -> list[str]:
        """Return the ids of articles stored without passages."""
        return self.store.articles_without_passages()

    def any_article(self, query: Query) -> bool:
        """Return True when some stored article passes the query's filters."""
        return self.store.any_article(query)

    @contextmanager
    def writer(self, on_wait: Callable[[int | None], None] | None = None) -> Iterator[PgWriter]:
        """Hold the database-wide writer lock (an advisory lock: it waits without telling); nothing
        to save afterwards."""
        with self.store.writing():
            yield PgWriter(self.store)

    def check(self, repair: bool = False) -> CheckReport:
        """Verify passages against their articles, and that every passage is searchable both ways."""
        problems = passage_problems(self.store.check_rows())
        articles, passages = self.store.counts()
        dim = self.store.get_meta("dim")
        problems += self._index_facts(int(dim) if dim else None)
        if repair and problems:
            with self.store.writing(), self.store.connection() as con:
                # The rows are the truth; only the indexes and sums over them can be rebuilt.
                con.execute("REINDEX TABLE passages")
                con.execute(
                    "UPDATE corpus_stats SET passages = d.n, terms = d.t"
                    " FROM (SELECT count(*) AS n, COALESCE(sum(n_terms), 0) AS t FROM passages) d"
                )
            after = self.check(repair=False)
            return CheckReport(after.articles, after.passages, after.problems, repaired=True)
        return CheckReport(articles, passages, tuple(problems))

    def _index_facts(self, dim: int | None) -> list[str]:
        facts: list[str] = []
        with self.store.connection() as con:
            rows: list[Any] = con.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'passages'"
                " AND indexname IN ('passages_embedding', 'passages_terms')"
            ).fetchall()
            names = {r[0] for r in rows}
            if "passages_terms" not in names:
                facts.append("the full-text index passages_terms is missing")
            kept = con.execute("SELECT passages, terms FROM corpus_stats").fetchone()
            actual = con.execute("SELECT count(*), COALESCE(sum(n_terms), 0) FROM passages").fetchone()
            if tuple(kept) != tuple(actual):
                facts.append(
                    f"corpus_stats says {kept[0]} passages of {kept[1]} terms,"
                    f" the table holds {actual[0]} of {actual[1]}"
                )
            if dim is None:
                return facts
            if "passages_embedding" not in names:
                facts.append("the HNSW index passages_embedding is missing")
            bad = con.execute("SELECT count(*) FROM passages WHERE vector_dims(embedding) <> %s", (dim,)).fetchone()
            if bad[0]:
                facts.append(f"{bad[0]} passages hold vectors that are not {dim}-dimensional")
        return facts

    def coordinator(self) -> PgCoordinator:
        """Return advisory locks in the primary database."""
        return PgCoordinator(self.config.storage)

    def fetch_cache(self) -> PgFetchCache:
        """Return the fetch cache in the database."""
        return PgFetchCache(self.store)

    def log_question(
        self,
        question: str,
        channel: str,
        chat_id: int | None,
        user_id: int | None,
        answered: bool,
        passage_ids: Sequence[int],
    ) -> int:
        """Record a question; return its id."""
        return self.log.log_question(question, channel, chat_id, user_id, answered, passage_ids)

    def get_question(self, question_id: int) -> str | None:
        """Return a recorded question's text."""
        return self.log.get_question(question_id)

    def record_feedback(
        self, question_id: int, value: int, chat_id: int | None, user_id: int | None, passage_ids: Sequence[int]
    ) -> None:
        """Record feedback on an answer."""
        self.log.record_feedback(question_id, value, chat_id, user_id, passage_ids)

    def usage(self) -> UsageStats:
        """Return question and feedback counts."""
        return self.log.usage()

    def dump(self) -> CorpusDump:
        """Return the whole database."""
        return dump_database(self.store)

    def load(self, dump: CorpusDump) -> TransferReport:
        """Fill this empty database with a dump."""
        with self.store.writing():
            return load_database(self.store, dump)

    def close(self) -> None:
        """Close the connection pools."""
        self.store.db.close()
