"""The local backend: one data directory on one machine, SQLite the source of truth, FAISS and BM25
files built from it, a lock file for writers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

from retrieval.config import Config
from retrieval.domain import Article
from retrieval.errors import EmptyIndexError, StoreError
from retrieval.models.sentvecs import SentenceVectors
from retrieval.query import Query
from retrieval.search.hybrid import HybridRetriever
from retrieval.storage.base import CheckReport, CorpusDump, SourceInfo, TransferReport, UsageStats, passage_problems
from retrieval.storage.local.coordination import FileCoordinator
from retrieval.storage.local.fetchcache import SqliteFetchCache
from retrieval.storage.local.indexes import LocalIndexes
from retrieval.storage.local.locking import writer_lock
from retrieval.storage.local.questions import QuestionLog
from retrieval.storage.local.store import Store
from retrieval.storage.local.transfer import dump_store, load_store
from retrieval.storage.local.writer import LocalWriter

__all__ = ["DB_NAME", "LocalBackend", "open_backend"]

DB_NAME = "newsqa.sqlite3"


def open_backend(config: Config, *, create: bool = False) -> LocalBackend:
    """Open the configured data directory; with ``create`` make it when missing."""
    folder = config.data_path
    db = folder / DB_NAME
    if not db.exists():
        if not create:
            raise EmptyIndexError(f"No index in {folder} — run `newsqa ingest PATH` first")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create data directory {folder}: {exc.strerror}") from None
    return LocalBackend(config, Store(db, create=create))


class LocalBackend:
    """Articles, passages and both indexes in one data directory."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.folder = config.data_path
        self.where = str(self.folder)
        self.store = store
        self.indexes = LocalIndexes(self.folder, store, config.index)
        self.log = QuestionLog(store)

    def get_meta(self, key: str) -> str | None:
        """Return a meta value of the store."""
        return self.store.get_meta(key)

    def retriever(self) -> HybridRetriever:
        """Return a retriever over the current snapshot of the indexes."""
        vectors, lexical = self.indexes.snapshot()
        return HybridRetriever(self.store, vectors, lexical, self.config.search)

    def refresh(self) -> bool:
        """Move to the newest consistent indexes if another process wrote."""
        return self.indexes.refresh()

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
    def writer(self, on_wait: Callable[[int | None], None] | None = None) -> Iterator[LocalWriter]:
        """Hold the data directory's writer lock; save the index files when the write is done."""
        with writer_lock(self.folder, on_wait=on_wait):
            writer = LocalWriter(self.store, self.indexes)
            try:
                yield writer
            finally:
                writer.finish()

    def check(self, repair: bool = False) -> CheckReport:
        """Verify that store and index files agree; with ``repair`` rebuild the files from the store."""
        rows = list(self.store.check_rows())
        problems = passage_problems(rows)
        articles, passages = self.store.counts()
        problems += self.indexes.problems([int(r[0]) for r in rows])
        if repair and problems:
            with writer_lock(self.folder):
                self.indexes.repair()
            after = self.check(repair=False)
            return CheckReport(after.articles, after.passages, after.problems, repaired=True)
        return CheckReport(articles, passages, tuple(problems))

    def coordinator(self) -> FileCoordinator:
        """Return lock files shared by the processes on this machine."""
        return FileCoordinator(self.folder)

    def fetch_cache(self) -> SqliteFetchCache:
        """Return the fetch cache in the store."""
        return SqliteFetchCache(self.store)

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
        """Return the whole store."""
        return dump_store(self.store)

    def load(self, dump: CorpusDump) -> TransferReport:
        """Fill this empty data directory with a dump, then build the index files from its rows."""
        with writer_lock(self.folder):
            report = load_store(self.store, dump)
        # The FAISS and BM25 files are built from the copied rows, without embedding anything.
        self.check(repair=True)
        return report

    def close(self) -> None:
        """Release the database connection of this thread."""
        self.store.close()
