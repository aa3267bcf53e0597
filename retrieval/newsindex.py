"""The core's one entry point: a store of articles that can be asked, written and read.

Backend-neutral: the store is whichever ``Backend`` the configuration names (opened by
``retrieval.storage.factory``); asking runs the answering pipeline over it, ingesting the
indexing of ``retrieval.ingest.indexing``.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from retrieval.answering.abstention import state_parts
from retrieval.answering.pipeline import Pipeline, default_pipeline
from retrieval.answering.state import AnswerState
from retrieval.config import Config
from retrieval.domain import Answer, Article, Hit
from retrieval.errors import EmptyIndexError, ModelMismatchError, NotFoundError
from retrieval.ingest.cache import FetchCache
from retrieval.ingest.indexing import IngestReport, index_articles
from retrieval.models.encoder import Encoder
from retrieval.models.identity import adopted_model
from retrieval.models.loading import load_encoder
from retrieval.query import Query, parse_question
from retrieval.search.fusion import Scored, SearchStats
from retrieval.storage.base import Backend, CheckReport, SourceInfo, UsageStats
from retrieval.storage.coordination import Coordinator
from retrieval.storage.factory import open_backend

__all__ = ["IndexStats", "NewsIndex", "unsplit_problem"]


def unsplit_problem(article_id: str) -> str:
    """Return the check's line for an article stored without passages."""
    return f"article {article_id} has no passages, so nothing of it is searchable (--repair splits it again)"


@dataclass(frozen=True)
class IndexStats:
    """The size and make of the index."""

    articles: int
    passages: int
    model: str
    updated_at: datetime | None


class NewsIndex:
    """Articles, passages and their indexes in one store.

    Reading is thread-safe; writes take a lock shared by every process using the store.
    """

    def __init__(
        self, config: Config, backend: Backend, encoder: Encoder | None = None, pipeline: Pipeline | None = None
    ) -> None:
        self.config = config
        self.backend = backend
        self.pipeline = pipeline or default_pipeline()
        self._encoder = encoder
        self._lock = threading.Lock()

    @classmethod
    def open(cls, config: Config, *, encoder: Encoder | None = None, create: bool = False) -> NewsIndex:
        """Open the configured store; with ``create`` make it when missing."""
        backend = open_backend(config, create=create)
        try:
            # A store keeps the encoder that built it (see retrieval.models.identity).
            stored = backend.get_meta("encoder")
            model = adopted_model(config.model, stored, backend.where, key=f"{backend.where}|{config.data_path}")
        except BaseException:
            backend.close()
            raise
        return cls(dataclasses.replace(config, model=model), backend, encoder)

    @property
    def encoder(self) -> Encoder:
        """Return the encoder, loading it on first use."""
        with self._lock:
            if self._encoder is None:
                self._encoder = load_encoder(self.config.model)
            stored_dim = self.backend.get_meta("dim")
            if stored_dim is not None and int(stored_dim) != self._encoder.dim:
                raise ModelMismatchError(
                    f"the index in {self.backend.where} holds {stored_dim}-dimensional vectors, "
                    f"the model makes {self._encoder.dim}"
                )
            return self._encoder

    def close(self) -> None:
        """Release the store's connections."""
        self.backend.close()

    def __enter__(self) -> NewsIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def refresh(self) -> bool:
        """Move to the newest indexes if another process wrote; return True when answers may change."""
        return self.backend.refresh()

    # -- asking --------------------------------------------------------------------------------
    def parse(self, question: str) -> Query:
        """Validate a question and return it with its filters."""
        return parse_question(question, self.config.search.max_question_chars)

    def state(
        self, question: str, k: int | None = None, offset: int = 0, fusion: str | None = None, depth: int | None = None
    ) -> AnswerState:
        """Return a fresh answering state for ``question`` (validated) over this store."""
        return self._state(self.parse(question), question, k, offset, fusion, depth)

    def _state(
        self, query: Query, question: str, k: int | None, offset: int, fusion: str | None, depth: int | None
    ) -> AnswerState:
        if self.backend.get_meta("encoder") is None:
            raise EmptyIndexError(f"No articles in {self.backend.where} yet — run `newsqa ingest PATH` first")
        return AnswerState(
            question=question,
            k=self.config.search.k if k is None else k,
            offset=offset,
            fusion=fusion or self.config.search.fusion,
            config=self.config.search,
            encoder=self.encoder,
            sources=self.backend,
            query=query,
            depth=depth,
        )

    def ask(self, question: str, k: int | None = None, offset: int = 0, fusion: str | None = None) -> Answer:
        """Answer a question with up to ``k`` quotes, skipping the first ``offset`` ones."""
        if (self.config.search.k if k is None else k) < 1:
            raise ValueError("k must be at least 1")
        return self.pipeline.run(self.state(question, k, offset, fusion)).answer()

    def rank(
        self, question: str, k: int = 10, fusion: str | None = None, stats: SearchStats | None = None
    ) -> list[Scored]:
        """Return the passages in the order answers show them: collapsed and reranked, no abstention."""
        state = self.state(question, k, 0, fusion)
        if stats is not None:
            state.stats = stats
        self.pipeline.without("abstention").up_to("rerank").run(state)
        return [g.lead for g in state.groups[:k]]

    def confidence_inputs(
        self, question: str, k: int | None = None, fusion: str | None = None
    ) -> tuple[list[tuple[float, float, float, float]], float | None]:
        """Return what abstention weighs for a question, from the hits ``ask`` answers from: per
        top passage its cosine, term coverage, share of names and best sentence's term coverage;
        and the contrast of the best passage with the background (for calibration)."""
        state = self.pipeline.up_to("recency").run(self.state(question, k, 0, fusion))
        return state_parts(state), state.stats.contrast

    def hits_for(self, query: Query, k: int, fusion: str | None = None) -> list[Scored]:
        """Return the backend's top ``k`` fused candidates for an already parsed query (for evaluation)."""
        state = self._state(query, query.text, k, 0, fusion, depth=k)
        return self.pipeline.up_to("candidates").run(state).hits

    def search(self, question: str, k: int = 10, fusion: str | None = None) -> list[Hit]:
        """Return the top ``k`` passages for a question (no abstention, no collapsing)."""
        return [s.hit for s in self.hits_for(self.parse(question), k, fusion)]

    # -- writing -------------------------------------------------------------------------------
    def ingest(
        self,
        articles: Iterable[Article],
        progress: Callable[[int], None] | None = None,
        batch_articles: int = 64,
        resplit: Collection[str] = (),
        on_batch: Callable[[IngestReport], None] | None = None,
        on_wait: Callable[[int | None], None] | None = None,
    ) -> IngestReport:
        """Add or update articles; unchanged ones are skipped, exact copies recorded as copies.

        Articles whose ids are in ``resplit`` are split and embedded again even when unchanged.
        ``progress`` is told of passages as they are embedded, ``on_batch`` gets the report so
        far after each committed batch, ``on_wait`` is called once (with the other writer's pid,
        if known) when another process holds the write lock. The report's seconds start once
        the lock is held.
        """
        return index_articles(
            self.backend,
            lambda: self.encoder,
            self.config,
            articles,
            progress,
            batch_articles,
            resplit=resplit,
            on_batch=on_batch,
            on_wait=on_wait,
        )

    def resplit(self, article_ids: Sequence[str]) -> IngestReport:
        """Split and embed these stored articles again (articles stored without passages)."""
        found = {}
        for article_id in article_ids:
            try:
                found[article_id] = self.backend.find_article(article_id)
            except NotFoundError:
                continue
        return self.ingest(found.values(), resplit=frozenset(article_ids))

    def remove(self, id_or_url: str) -> Article:
        """Delete an article and its passages from the store and the indexes."""
        article = self.backend.find_article(id_or_url)
        with self.backend.writer() as writer, writer.transaction() as tx:
            tx.remove_article(article.id)
        return article

    # -- reading -------------------------------------------------------------------------------
    def get(self, id_or_url: str) -> Article:
        """Return one stored article."""
        return self.backend.find_article(id_or_url)

    def sources(self, limit: int | None = 20, offset: int = 0) -> list[SourceInfo]:
        """Return stored articles, newest first."""
        return self.backend.sources(limit, offset)

    def stats(self) -> IndexStats:
        """Return counts, the encoder and the time of the last write."""
        articles, passages = self.backend.counts()
        updated = self.backend.get_meta("updated_at")
        return IndexStats(
            articles,
            passages,
            self.backend.get_meta("encoder") or self.config.model.name,
            datetime.fromisoformat(updated) if updated else None,
        )

    def check(self, repair: bool = False) -> CheckReport:
        """Verify that store and indexes agree; with ``repair`` rebuild the indexes from the store.

        An article stored without passages (nothing of it searchable) is a problem too; repair
        splits and embeds it again.
        """
        unsplit = self.backend.articles_without_passages()
        if repair and unsplit:
            self.resplit(unsplit)
        report = self.backend.check(repair)
        left = [unsplit_problem(aid) for aid in (self.backend.articles_without_passages() if repair else unsplit)]
        return dataclasses.replace(
            report, problems=(*report.problems, *left), repaired=report.repaired or (repair and bool(unsplit))
        )

    def coordinator(self) -> Coordinator:
        """Return the named locks shared by every process on this store."""
        return self.backend.coordinator()

    def fetch_cache(self) -> FetchCache:
        """Return what was fetched before (web pages, feed entries), kept in this store."""
        return self.backend.fetch_cache()

    # -- questions and feedback ----------------------------------------------------------------
    def log_question(
        self, question: str, *, channel: str, chat_id: int | None, user_id: int | None, answer: Answer
    ) -> int:
        """Record a question and what was answered; return its id."""
        return self.backend.log_question(
            question, channel, chat_id, user_id, answer.answered, [q.passage_id for q in answer.quotes]
        )

    def get_question(self, question_id: int) -> str | None:
        """Return a recorded question."""
        return self.backend.get_question(question_id)

    def record_feedback(
        self, question_id: int, value: int, *, chat_id: int | None, user_id: int | None, passage_ids: Sequence[int]
    ) -> None:
        """Record feedback on an answer (+1 or -1)."""
        self.backend.record_feedback(question_id, value, chat_id, user_id, passage_ids)

    def usage(self) -> UsageStats:
        """Return question and feedback counts."""
        return self.backend.usage()
