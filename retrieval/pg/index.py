"""``NewsIndex`` over PostgreSQL: the same ingest, ask and remove, with the indexes in the database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from retrieval.config import Config
from retrieval.encoder import Encoder
from retrieval.errors import ConfigError, EmptyIndexError
from retrieval.models import Article
from retrieval.newsindex import CheckReport, NewsIndex, unsplit_problem
from retrieval.pg.connect import Database
from retrieval.pg.migrations import current_version
from retrieval.pg.search import PgRetriever
from retrieval.pg.store import PgStore
from retrieval.search import Retriever
from retrieval.vectorindex import VectorIndex

__all__ = ["DatabaseVectors", "PgNewsIndex", "open_database", "upgrade_database"]


class DatabaseVectors(VectorIndex):
    """The write path's view of the vector index: the rows already carry their vectors.

    pgvector's HNSW index changes with the rows in the same transaction, so adding and removing
    here have nothing left to do.
    """

    def __init__(self, dim: int, generation: int) -> None:
        self.dim = dim
        self.generation = generation

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Nothing to do: the passage rows were inserted with their vectors."""

    def remove(self, ids: np.ndarray) -> None:
        """Nothing to do: the passage rows were deleted with their vectors."""

    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError("searches run in the database (retrieval.pg.search)")

    def __len__(self) -> int:
        return 0


def open_database(config: Config, *, encoder: Encoder | None = None, create: bool = False) -> PgNewsIndex:
    """Open the configured database; with ``create`` set up a fresh one's schema."""
    if config.storage.backend != "postgres":
        raise ConfigError(f'storage.backend must be "local" or "postgres", not {config.storage.backend!r}')
    db = Database(config.storage)
    try:
        store = PgStore(db, create=create)
        index = PgNewsIndex(config, store, encoder)
        index._check_model()
    except BaseException:
        db.close()
        raise
    return index


def upgrade_database(config: Config) -> tuple[list[str], int]:
    """Apply the schema migrations the configured database lacks; return them and the version now."""
    if config.storage.backend != "postgres":
        raise ConfigError('`newsqa db` works on the postgres backend: set [storage] backend = "postgres"')
    db = Database(config.storage)
    try:
        applied = PgStore.upgrade(db)
        with db.connection() as con:
            return applied, current_version(con)
    finally:
        db.close()


class PgNewsIndex(NewsIndex):
    """Articles, passages and both indexes in one PostgreSQL database shared by every process."""

    store: PgStore

    def __init__(self, config: Config, store: PgStore, encoder: Encoder | None = None) -> None:
        super().__init__(config, store, encoder)
        self._seen_generation = store.generation()

    def close(self) -> None:
        """Close this index's connection pools."""
        self.store.db.close()

    def _writing(self, on_wait: Callable[[int | None], None] | None = None) -> AbstractContextManager[None]:
        return self.store.writing()  # a database-wide advisory lock: waits without telling

    def refresh(self) -> bool:
        """Return True when anyone wrote since the last call (answers always read the newest data anyway)."""
        gen = self.store.generation()
        changed = gen != self._seen_generation
        self._seen_generation = gen
        return changed

    def retriever(self) -> Retriever:
        """Return a retriever that searches in the database."""
        if self.store.get_meta("encoder") is None:
            raise EmptyIndexError("No articles in the database yet — run `newsqa ingest PATH` first")
        return PgRetriever(self.store, self.config.search)

    def _prepare_write(self) -> DatabaseVectors:  # type: ignore[override]
        """Record the encoder (and fix the vector column's dimension) on first use."""
        encoder = self.encoder
        if self.store.get_meta("encoder") is None:
            with self.store.transaction() as con:
                self.store.set_meta("encoder", encoder.identity, con)
                self.store.set_meta("dim", str(encoder.dim), con)
                self.store.set_dimension(con, encoder.dim)
        encoder.set_threads(self.config.model.ingest_threads)
        return DatabaseVectors(encoder.dim, self.store.generation())

    def _finish_write(self, vectors: VectorIndex) -> None:
        """Nothing to save: the database's indexes changed with each committed batch."""

    def remove(self, id_or_url: str) -> Article:
        """Delete an article and its passages (a stored copy inherits them)."""
        article = self.store.find_article(id_or_url)
        with self._writing(), self.store.transaction() as con:
            self.store.remove_article(con, article.id)
        return article

    def check(self, repair: bool = False) -> CheckReport:
        """Verify passages against their articles, and that every passage is searchable both ways."""
        problems: list[str] = []
        for pid, aid, start, end, text, article_text in self.store.check_rows():
            if article_text is None:
                problems.append(f"passage {pid} belongs to missing article {aid}")
            elif article_text[start:end] != text:
                problems.append(f"passage {pid} of article {aid}: text does not match offsets {start}:{end}")
        unsplit = self.store.articles_without_passages()
        problems += [unsplit_problem(aid) for aid in unsplit]
        articles, passages = self.store.counts()
        dim = self.store.get_meta("dim")
        for row in self._index_facts(int(dim) if dim else None):
            problems.append(row)
        if repair and problems:
            if unsplit:
                self.resplit(unsplit)
            with self._writing(), self.store.connection() as con:
                # The rows are the truth; only the indexes and sums over them can be rebuilt.
                con.execute("REINDEX TABLE passages")
                con.execute(
                    "UPDATE corpus_stats SET passages = d.n, terms = d.t"
                    " FROM (SELECT count(*) AS n, COALESCE(sum(n_terms), 0) AS t FROM passages) d"
                )
            after = self.check(repair=False)
            return CheckReport(after.articles, after.passages, after.problems, repaired=True)
        return CheckReport(articles, passages, tuple(problems))

    def _index_facts(self, dim: int | None) -> Iterator[str]:
        with self.store.connection() as con:
            rows: list[Any] = con.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'passages'"
                " AND indexname IN ('passages_embedding', 'passages_terms')"
            ).fetchall()
            names = {r[0] for r in rows}
            if "passages_terms" not in names:
                yield "the full-text index passages_terms is missing"
            kept = con.execute("SELECT passages, terms FROM corpus_stats").fetchone()
            actual = con.execute("SELECT count(*), COALESCE(sum(n_terms), 0) FROM passages").fetchone()
            if tuple(kept) != tuple(actual):
                yield (
                    f"corpus_stats says {kept[0]} passages of {kept[1]} terms,"
                    f" the table holds {actual[0]} of {actual[1]}"
                )
            if dim is None:
                return
            if "passages_embedding" not in names:
                yield "the HNSW index passages_embedding is missing"
            bad = con.execute("SELECT count(*) FROM passages WHERE vector_dims(embedding) <> %s", (dim,)).fetchone()
            if bad[0]:
                yield f"{bad[0]} passages hold vectors that are not {dim}-dimensional"
