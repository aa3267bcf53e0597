"""The service layer: what every front-end (CLI, REPL, Telegram, ``serve``) does with the core.

A front-end parses, calls one of these and renders; it never opens a backend itself. Writes go
through a writer index of their own (sharing the loaded model) and the answering index is
refreshed after them, so answers in other threads never see a half-written index: that is the
one ingest-then-refresh. The ``Refresher`` is the one way a long-running front-end picks up
what other processes wrote.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from retrieval.config import Config, FeedConfig
from retrieval.domain import Answer, Article
from retrieval.errors import NewsqaError
from retrieval.evaluation import EvalQuestion, MethodResult, evaluate
from retrieval.ingest.indexing import IngestReport
from retrieval.newsindex import IndexStats, NewsIndex
from retrieval.storage.base import CheckReport, SourceInfo, TransferReport, UsageStats
from retrieval.storage.coordination import Coordinator
from retrieval.storage.factory import migrate, upgrade_schema

if TYPE_CHECKING:
    from retrieval.ingest.web import Fetcher

__all__ = ["LoggedAnswer", "NewsService", "Refresher", "migrate_store", "upgrade_store"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoggedAnswer:
    """An answer and the id its question was logged under (for "More" and feedback)."""

    answer: Answer
    question_id: int


class NewsService:
    """One store, opened for a front-end: asking, writing, reading, keeping current."""

    def __init__(self, index: NewsIndex) -> None:
        self.index = index

    @classmethod
    def open(cls, config: Config, *, create: bool = False) -> NewsService:
        """Open the configured store; with ``create`` make it when missing."""
        return cls(NewsIndex.open(config, create=create))

    @property
    def config(self) -> Config:
        """Return the configuration in effect (with the store's own encoder settings)."""
        return self.index.config

    def close(self) -> None:
        """Release the store's connections."""
        self.index.close()

    def warm_up(self) -> None:
        """Load the model (and the runtime's session) now rather than at the first question."""
        self.index.encoder.embed_one("warm up")

    # -- asking --------------------------------------------------------------------------------
    def ask(self, question: str, *, k: int | None = None, offset: int = 0) -> Answer:
        """Answer a question with up to ``k`` quotes after the first ``offset``."""
        return self.index.ask(question, k=k, offset=offset)

    def ask_logged(
        self,
        question: str,
        *,
        channel: str,
        chat_id: int | None = None,
        user_id: int | None = None,
        k: int | None = None,
    ) -> LoggedAnswer:
        """Answer a question and log it with what answered it (for feedback and /stats)."""
        answer = self.index.ask(question, k=k)
        question_id = self.index.log_question(
            question, channel=channel, chat_id=chat_id, user_id=user_id, answer=answer
        )
        return LoggedAnswer(answer, question_id)

    def logged_question(self, question_id: int) -> str | None:
        """Return a logged question's text."""
        return self.index.get_question(question_id)

    def record_feedback(
        self, question_id: int, value: int, *, chat_id: int | None, user_id: int | None, passage_ids: Sequence[int]
    ) -> None:
        """Record a thumbs up (+1) or down (-1) for the quotes shown."""
        self.index.record_feedback(question_id, value, chat_id=chat_id, user_id=user_id, passage_ids=passage_ids)

    def evaluate(
        self,
        questions: list[EvalQuestion],
        method: str | None = None,
        full: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> MethodResult:
        """Score answers against questions with known answers (``newsqa eval``)."""
        return evaluate(self.index, questions, method, full, progress)

    # -- reading -------------------------------------------------------------------------------
    def stats(self) -> IndexStats:
        """Return counts, the encoder and the time of the last write."""
        return self.index.stats()

    def sources(self, limit: int | None = 20, offset: int = 0) -> list[SourceInfo]:
        """Return stored articles, newest first."""
        return self.index.sources(limit, offset)

    def get(self, id_or_url: str) -> Article:
        """Return one stored article."""
        return self.index.get(id_or_url)

    def usage(self) -> UsageStats:
        """Return question and feedback counts."""
        return self.index.usage()

    def check(self, repair: bool = False) -> CheckReport:
        """Verify that store and indexes agree; with ``repair`` rebuild the indexes."""
        return self.index.check(repair)

    # -- writing: through a writer of their own, then refresh ----------------------------------
    def ingest(
        self,
        articles: Iterable[Article],
        progress: Callable[[int], None] | None = None,
        on_batch: Callable[[IngestReport], None] | None = None,
        on_wait: Callable[[int | None], None] | None = None,
    ) -> IngestReport:
        """Add or update articles, then answer from them (``NewsIndex.ingest`` says what the callbacks get)."""
        return self._write(
            lambda writer: writer.ingest(articles, progress=progress, on_batch=on_batch, on_wait=on_wait)
        )

    def ingest_source(
        self, url: str, fetcher: Fetcher, *, source: str | None = None, stop: threading.Event | None = None
    ) -> IngestReport:
        """Fetch a page or a feed with ``fetcher`` and ingest what is new or changed, then answer from it."""
        from retrieval.ingest.sources import ingest_source  # httpx (and what it imports) loads only here

        return self._write(lambda writer: ingest_source(writer, url, fetcher, source=source, stop=stop))

    def ingest_url(self, url: str) -> IngestReport:
        """Fetch a page or a feed and ingest it (the /add command)."""
        from retrieval.ingest.web import Fetcher

        with Fetcher(self.config.web) as fetcher:
            return self.ingest_source(url, fetcher)

    def poll_feed(self, feed: FeedConfig, fetcher: Fetcher, stop: threading.Event | None = None) -> IngestReport:
        """Poll one configured feed: ingest what is new or changed since the last poll."""
        return self.ingest_source(feed.url, fetcher, source=feed.source or None, stop=stop)

    def remove(self, id_or_url: str) -> Article:
        """Delete an article and its passages."""
        return self.index.remove(id_or_url)

    def _write(self, write: Callable[[NewsIndex], IngestReport]) -> IngestReport:
        writer = NewsIndex.open(self.index.config, encoder=self.index.encoder, create=True)
        try:
            report = write(writer)
        finally:
            writer.close()
        self.refresh()
        return report

    # -- keeping current -------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Answer from what other processes wrote since; return True when that changed anything."""
        return self.index.refresh()

    def fetched_at(self, url: str) -> datetime | None:
        """Return when ``url`` was last fetched to the end by any process on this store."""
        return self.index.fetch_cache().fetched_at(url)

    def coordinator(self) -> Coordinator:
        """Return the named locks shared by every process on this store."""
        return self.index.coordinator()


class Refresher:
    """Refresh a service every ``every`` seconds in a thread of its own, until stopped."""

    def __init__(self, service: NewsService, every: float) -> None:
        self.service = service
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="refresh", daemon=True)

    def start(self) -> Refresher:
        """Start refreshing; return self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop refreshing (waits for a refresh in progress)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                if self.service.refresh():
                    log.info("the index changed on disk; reloaded")
            except NewsqaError as exc:
                log.warning("cannot reload the index: %s", exc)


def upgrade_store(config: Config) -> tuple[list[str], int]:
    """Apply the schema migrations the configured store lacks (``newsqa db upgrade``)."""
    return upgrade_schema(config)


def migrate_store(config: Config, source: str, target: str) -> TransferReport:
    """Copy the store of backend ``source`` into the empty one of ``target`` (``newsqa migrate``)."""
    return migrate(config, source, target)
