"""Writing to the local backend: SQLite transactions, with the FAISS index following each one.

Readers in other threads keep searching the current index; the writer changes a copy of it,
batch by batch, and when the write is done BM25 is brought up to date, both files are saved and
the copy replaces the index answers are read from (FAISS allows no search during an add).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from retrieval.domain import Article
from retrieval.models.sentvecs import SentenceVectors
from retrieval.search.vector import FaissIndex
from retrieval.storage.local.indexes import LocalIndexes
from retrieval.storage.local.store import Store

__all__ = ["LocalTransaction", "LocalWriter"]


class LocalTransaction:
    """One SQLite write transaction; records the passages it added and removed."""

    def __init__(self, store: Store, con: sqlite3.Connection) -> None:
        self.store = store
        self.con = con
        self.removed: list[int] = []
        self.added_ids: list[int] = []
        self.added_vectors: list[np.ndarray] = []

    def original_with_hash(self, digest: str) -> str | None:
        """Return the id of an indexed article with exactly this text, if any."""
        return self.store.original_with_hash(digest, self.con)

    def put_article(self, article: Article, digest: str, duplicate_of: str | None) -> None:
        """Insert or replace an article row."""
        self.store.put_article(self.con, article, digest, duplicate_of)

    def delete_passages(self, article_id: str) -> None:
        """Delete an article's passages."""
        self.removed += self.store.delete_passages(self.con, article_id)

    def add_passages(
        self,
        article_id: str,
        spans: Sequence[tuple[int, int, int, str]],
        vectors: np.ndarray,
        sentences: Sequence[SentenceVectors | None],
    ) -> None:
        """Insert passages with their vectors and sentence vectors."""
        self.added_ids += self.store.add_passages(self.con, article_id, spans, vectors, sentences)
        self.added_vectors.append(vectors)

    def remove_article(self, article_id: str) -> None:
        """Delete an article (its passages go to a stored copy if there is one)."""
        gone, _ = self.store.remove_article(self.con, article_id)
        self.removed += gone


class LocalWriter:
    """A writer of one data directory (the caller holds its writer lock)."""

    def __init__(self, store: Store, indexes: LocalIndexes) -> None:
        self.store = store
        self.indexes = indexes
        self.start_generation = store.generation()
        self.vectors: FaissIndex | None = None

    def article_state(self, article_id: str) -> tuple[str, str | None] | None:
        """Return ``(content_hash, duplicate_of)`` of a stored article, or None."""
        return self.store.article_state(article_id)

    def record_encoder(self, identity: str, dim: int) -> None:
        """Record the encoder of the data directory's first write."""
        with self.store.transaction() as con:
            self.store.set_meta("encoder", identity, con)
            self.store.set_meta("dim", str(dim), con)

    @contextmanager
    def transaction(self) -> Iterator[LocalTransaction]:
        """Yield one transaction; once committed, the vector index copy follows it."""
        if self.vectors is None:
            current, _ = self.indexes.load(save=False, writing=True)
            self.vectors = current.copy()
        vectors = self.vectors
        with self.store.transaction() as con:
            tx = LocalTransaction(self.store, con)
            yield tx
        vectors.remove(np.array(tx.removed, dtype=np.int64))
        if tx.added_ids:
            vectors.add(np.array(tx.added_ids, dtype=np.int64), np.vstack(tx.added_vectors))
        vectors.generation = self.store.generation()

    def finish(self) -> None:
        """Index whatever was committed (also after a failed batch) and save the index files."""
        if self.vectors is not None and self.store.generation() != self.start_generation:
            self.indexes.finish_write(self.vectors)
