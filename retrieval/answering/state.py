"""The one state every answering stage reads and writes, from the question to the ``Answer``.

A stage reads what earlier stages left here and adds its own part; nothing else passes between
stages. What the state holds, in the order the default stages fill it::

    query, query_vector, stats, idf    the parsed question and what the search saw   (candidates)
    hits                               fused candidate passages, best first          (candidates, recency)
    confidence, reason, done           how sure the answer is; why not, when it stops (abstention)
    groups                             near-duplicates collapsed, one per passage     (collapse)
      .spans, .sentence_scores         each group's sentences and how well each answers (rerank, marking;
      .score                           the group's rank score                           a reader stage sets them)
    answerability                      a model's verdict that the groups answer       (a reader stage; unused yet)
    marked                             groups shown, each with its marked window       (marking)
    quotes                             what the user sees                               (quotes)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from retrieval.config import SearchConfig
from retrieval.domain import Answer, Article, Quote
from retrieval.models.encoder import Encoder
from retrieval.models.sentvecs import SentenceVectors
from retrieval.query import Query
from retrieval.search.fusion import Scored, SearchStats
from retrieval.search.tokens import tokenize
from retrieval.storage.base import Retriever

__all__ = ["NOT_FOUND", "NO_MATCH", "NO_MORE", "AnswerSources", "AnswerState", "Group", "no_match_reason"]

NOT_FOUND = "not found in the indexed articles"
NO_MORE = "no more quotes for this question"
# The reason when the question's filters (source:, since:, until:) leave no article at all.
NO_MATCH = "no article matches"


def no_match_reason(query: Query) -> str:
    """Return why a filtered question has no answer: "no article matches source:norland"."""
    return f"{NO_MATCH} {query.filters_text()}"


class AnswerSources(Protocol):
    """What answering reads from the store besides the question's candidates (a ``Backend`` is one)."""

    def retriever(self) -> Retriever:
        """Return the indexes to search."""
        ...

    def sentence_vectors(self, passage_ids: Iterable[int]) -> dict[int, SentenceVectors]:
        """Return the stored sentence vectors of these passages."""
        ...

    def copies_of(self, article_ids: Iterable[str]) -> dict[str, list[Article]]:
        """Return the stored copies of these articles."""
        ...

    def any_article(self, query: Query) -> bool:
        """Return True when some stored article passes the query's filters."""
        ...


@dataclass
class Group:
    """A candidate shown at most once: the best of a set of near-identical passages.

    ``spans`` are its passage's sentences (offsets into the passage text) and
    ``sentence_scores`` how well each answers the question (higher is better), set by the stage
    that scores sentences first; ``score`` ranks the group once a rerank has set it (else 0, and
    the fused score counts); ``mark`` is the window of sentences the marking chose.
    """

    lead: Scored
    also: list[Article] = field(default_factory=list)
    spans: list[tuple[int, int]] | None = None
    sentence_scores: np.ndarray | None = None
    score: float = 0.0
    mark: tuple[int, int] | None = None

    def sentences(self) -> list[str]:
        """Return the texts of the group's sentences (``spans`` must be set)."""
        assert self.spans is not None
        text = self.lead.hit.passage.text
        return [text[a:b] for a, b in self.spans]


@dataclass
class AnswerState:
    """One question on its way to an answer."""

    question: str
    k: int
    offset: int
    fusion: str
    config: SearchConfig
    encoder: Encoder
    sources: AnswerSources
    query: Query
    # Passages the candidates stage asks the backend for; None: as many as answering looks at.
    depth: int | None = None
    query_vector: np.ndarray | None = None
    stats: SearchStats = field(default_factory=SearchStats)
    idf: dict[str, float] = field(default_factory=dict)
    hits: list[Scored] = field(default_factory=list)
    confidence: float | None = None
    answerability: float | None = None
    groups: list[Group] = field(default_factory=list)
    marked: list[Group] = field(default_factory=list)
    quotes: list[Quote] = field(default_factory=list)
    reason: str | None = None
    done: bool = False
    _terms: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _stored: dict[int, SentenceVectors] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._terms[self.query.text] = self.query.terms  # the search made them already

    @property
    def wanted(self) -> int:
        """Return how many quotes the answer is built to (the ones skipped by ``offset`` too)."""
        return self.offset + self.k

    def terms(self, texts: Sequence[str]) -> list[list[str]]:
        """Return the terms of each text, each text tokenised once per question."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._terms]
        if missing:
            self._terms.update(zip(missing, tokenize(missing), strict=True))
        return [self._terms[t] for t in texts]

    def stored(self, passage_id: int) -> SentenceVectors | None:
        """Return a hit's stored sentence vectors (read for all the hits at the first call)."""
        if self._stored is None:
            self._stored = self.sources.sentence_vectors(s.hit.passage.id for s in self.hits)
        return self._stored.get(passage_id)

    def stop(self, reason: str) -> None:
        """End the answer here: no quotes, for ``reason``."""
        self.reason = reason
        self.done = True

    def answer(self) -> Answer:
        """Return the answer the stages made."""
        if self.reason is not None or not self.quotes:
            return Answer(self.question, (), False, self.reason or NO_MORE)
        return Answer(self.question, tuple(self.quotes), True, None)
