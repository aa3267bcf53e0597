"""The storage seam: everything the core asks of a backend, and nothing more.

A backend keeps the articles, their passages (with vectors and sentence vectors), the questions
log and the fetch cache; finds candidate passages for a question; keeps its indexes up to date
as it is written; and can copy itself out and in. ``retrieval/storage/factory.py`` opens the one
the configuration names (it is the only code that reads ``storage.backend``). A backend is one
package under ``retrieval/storage/`` that implements these protocols; none subclasses another.

The protocols, top down::

    Backend          one store, opened by the factory
      .retriever()   -> Retriever     a consistent view of the indexes for one question
      .writer()      -> Writer        the writer lock held; index upkeep when the block ends
        .transaction() -> Transaction one batch of articles, committed together
      .coordinator() -> Coordinator   named locks shared by the processes on this store
      .fetch_cache() -> FetchCache    what was fetched before (web pages, feed entries)
      .dump() / .load(dump)           a copy of the whole store, for ``newsqa migrate``
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np

from retrieval.domain import Article
from retrieval.ingest.cache import FetchCache
from retrieval.models.sentvecs import SentenceVectors
from retrieval.query import Query
from retrieval.search.fusion import Scored, SearchStats
from retrieval.storage.coordination import Coordinator

__all__ = [
    "ArticleRow",
    "Backend",
    "CheckReport",
    "CorpusDump",
    "FeedbackRow",
    "PassageRow",
    "QuestionRow",
    "Retriever",
    "SourceInfo",
    "Transaction",
    "TransferReport",
    "UsageStats",
    "Writer",
    "passage_problems",
]


@dataclass(frozen=True)
class SourceInfo:
    """An article and how many passages of it are indexed."""

    article: Article
    passages: int


@dataclass(frozen=True)
class UsageStats:
    """How the bot has been used."""

    questions: int
    not_found: int
    feedback_up: int
    feedback_down: int


@dataclass(frozen=True)
class CheckReport:
    """What ``check`` found; ``ok`` when store and indexes agree."""

    articles: int
    passages: int
    problems: tuple[str, ...]
    repaired: bool = False

    @property
    def ok(self) -> bool:
        """Return True when nothing is wrong."""
        return not self.problems


def passage_problems(rows: Iterable[tuple[int, str, int, int, str, str | None]]) -> list[str]:
    """Return what is wrong with ``(passage id, article id, start, end, text, article text)`` rows.

    A passage must belong to a stored article and be exactly the text at its offsets.
    """
    problems: list[str] = []
    for pid, aid, start, end, text, article_text in rows:
        if article_text is None:
            problems.append(f"passage {pid} belongs to missing article {aid}")
        elif article_text[start:end] != text:
            problems.append(f"passage {pid} of article {aid}: text does not match offsets {start}:{end}")
    return problems


# -- reading ------------------------------------------------------------------------------------


class Retriever(Protocol):
    """The indexes as they were when it was made: every call answers from the same data."""

    def search(
        self, query: Query, query_vector: np.ndarray, k: int, fusion: str, stats: SearchStats | None = None
    ) -> list[Scored]:
        """Return up to ``k`` passages for ``query``, best first by ``fusion`` (one of ``FUSIONS``).

        Dense candidates are the passages nearest ``query_vector``, lexical ones the best by BM25
        over ``query.terms``; both lists are scored both ways and fused by the rules of
        ``retrieval.search.fusion``. ``stats`` (if given) receives the dense list's top and
        background.
        """
        ...

    def idf(self, terms: Sequence[str]) -> dict[str, float]:
        """Return the inverse document frequency of each term, as BM25 weighs it."""
        ...


# -- writing ------------------------------------------------------------------------------------


class Transaction(Protocol):
    """One batch of writes, committed together (a failure rolls the whole batch back)."""

    def original_with_hash(self, digest: str) -> str | None:
        """Return the id of an indexed article (not a copy) with exactly this text's hash."""
        ...

    def put_article(self, article: Article, digest: str, duplicate_of: str | None) -> None:
        """Insert or replace an article row (its passages are written separately)."""
        ...

    def delete_passages(self, article_id: str) -> None:
        """Delete an article's passages."""
        ...

    def add_passages(
        self,
        article_id: str,
        spans: Sequence[tuple[int, int, int, str]],
        vectors: np.ndarray,
        sentences: Sequence[SentenceVectors | None],
    ) -> None:
        """Insert passages ``(ordinal, start, end, text)`` with their vectors and sentence vectors."""
        ...

    def remove_article(self, article_id: str) -> None:
        """Delete an article; its passages move to a stored copy of it if there is one."""
        ...


class Writer(Protocol):
    """A writer holding the store's writer lock (one at a time, across processes)."""

    def article_state(self, article_id: str) -> tuple[str, str | None] | None:
        """Return ``(content_hash, duplicate_of)`` of a stored article, or None."""
        ...

    def record_encoder(self, identity: str, dim: int) -> None:
        """Record the encoder on the store's first write (its vectors are then ``dim`` wide)."""
        ...

    def transaction(self) -> AbstractContextManager[Transaction]:
        """Return one write transaction; the indexes follow what it committed."""
        ...


# -- copying ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArticleRow:
    """An article as stored: times as the ISO 8601 text they were stored as."""

    id: str
    url: str
    title: str | None
    source: str | None
    published: str | None
    language: str | None
    text: str
    content_hash: str
    duplicate_of: str | None
    fetched_at: str | None
    added_at: str


@dataclass(frozen=True)
class PassageRow:
    """A passage as stored: its vector and its packed sentence vectors (``SentenceVectors.pack``)."""

    id: int
    article_id: str
    ordinal: int
    start: int
    end: int
    text: str
    vector: np.ndarray
    sentences: bytes | None


@dataclass(frozen=True)
class QuestionRow:
    """A logged question."""

    id: int
    asked_at: datetime
    question: str
    channel: str
    chat_id: int | None
    user_id: int | None
    answered: bool
    passage_ids: list[int]


@dataclass(frozen=True)
class FeedbackRow:
    """A thumbs up (+1) or down (-1) on an answer."""

    id: int
    question_id: int
    value: int
    chat_id: int | None
    user_id: int | None
    passage_ids: list[int]
    at: datetime


@dataclass
class CorpusDump:
    """A whole store, read lazily in batches (each iterator can be read once).

    Ids stay as they are: passages keep theirs (the vector indexes are keyed by them) and the
    feedback refers to its question by id.
    """

    encoder: str
    dim: int
    articles: Iterator[list[ArticleRow]]
    passages: Iterator[list[PassageRow]]
    questions: list[QuestionRow] = field(default_factory=list)
    feedback: list[FeedbackRow] = field(default_factory=list)


@dataclass(frozen=True)
class TransferReport:
    """What was copied."""

    articles: int
    passages: int
    questions: int = 0
    feedback: int = 0


# -- the backend ----------------------------------------------------------------------------------


class Backend(Protocol):
    """One store of articles, passages and their indexes."""

    # Where the data is, for messages: "/srv/newsqa/data" or "the database".
    where: str

    def get_meta(self, key: str) -> str | None:
        """Return a value the store keeps about itself ("encoder", "dim", "updated_at")."""
        ...

    def retriever(self) -> Retriever:
        """Return the current indexes to search (a snapshot that writers do not change)."""
        ...

    def refresh(self) -> bool:
        """Move to the newest indexes if another process wrote; return True if answers changed."""
        ...

    # -- what answering reads besides the indexes
    def sentence_vectors(self, passage_ids: Iterable[int]) -> dict[int, SentenceVectors]:
        """Return the stored sentence vectors of these passages (older passages have none)."""
        ...

    def copies_of(self, article_ids: Iterable[str]) -> dict[str, list[Article]]:
        """Return, for each article id, the stored copies of it under other URLs."""
        ...

    def any_article(self, query: Query) -> bool:
        """Return True when some stored article passes the query's filters (``Query.admits``)."""
        ...

    # -- articles
    def find_article(self, id_or_url: str) -> Article:
        """Return the article with this id or URL, else raise NotFoundError."""
        ...

    def sources(self, limit: int | None, offset: int) -> list[SourceInfo]:
        """Return articles newest first with their passage counts."""
        ...

    def counts(self) -> tuple[int, int]:
        """Return ``(articles, passages)``."""
        ...

    def articles_without_passages(self) -> list[str]:
        """Return the ids of articles (not copies) stored without passages: nothing of them is searchable."""
        ...

    # -- writing and upkeep
    def writer(self, on_wait: Callable[[int | None], None] | None = None) -> AbstractContextManager[Writer]:
        """Take the writer lock; when the block ends, bring the indexes up to date with what was
        committed (also when it ends with an error) and let the lock go. ``on_wait`` is called
        once (with the holder's process id, when known) if another writer holds the lock."""
        ...

    def check(self, repair: bool = False) -> CheckReport:
        """Verify that the rows and the indexes agree; with ``repair`` rebuild what the rows allow."""
        ...

    def coordinator(self) -> Coordinator:
        """Return the named locks shared by every process on this store."""
        ...

    def fetch_cache(self) -> FetchCache:
        """Return what was fetched before, kept in this store."""
        ...

    # -- questions and feedback
    def log_question(
        self,
        question: str,
        channel: str,
        chat_id: int | None,
        user_id: int | None,
        answered: bool,
        passage_ids: Sequence[int],
    ) -> int:
        """Record a question and what answered it; return its id."""
        ...

    def get_question(self, question_id: int) -> str | None:
        """Return a recorded question's text."""
        ...

    def record_feedback(
        self, question_id: int, value: int, chat_id: int | None, user_id: int | None, passage_ids: Sequence[int]
    ) -> None:
        """Record a thumbs up (+1) or down (-1) for an answer."""
        ...

    def usage(self) -> UsageStats:
        """Return question and feedback counts."""
        ...

    # -- copying
    def dump(self) -> CorpusDump:
        """Return the whole store for ``load`` into another backend (nothing is embedded again)."""
        ...

    def load(self, dump: CorpusDump) -> TransferReport:
        """Fill this empty store with a dump and build its indexes from it."""
        ...

    def close(self) -> None:
        """Let the connections go."""
        ...
