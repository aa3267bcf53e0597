"""Value types of the core: articles, passages, hits, quotes and answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Article:
    """A news article: its clean body text and what is known about where it came from."""

    id: str
    url: str
    text: str
    title: str | None = None
    source: str | None = None
    published: datetime | None = None
    language: str | None = None
    fetched_at: datetime | None = None


@dataclass(frozen=True)
class Passage:
    """A span of an article's text; ``text == article.text[start:end]`` always."""

    id: int
    article_id: str
    ordinal: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Hit:
    """A passage found for a query, with the scores that ranked it (higher is better)."""

    passage: Passage
    dense: float | None
    lexical: float | None
    fused: float
    rank: int


@dataclass(frozen=True)
class Quote:
    """The part of a hit shown to the user.

    ``highlight`` holds offsets into ``text`` of the marked sentence(s); ``link`` opens the
    article, scrolled to the marked sentence where the URL scheme allows it.
    """

    text: str
    start: int
    end: int
    highlight: tuple[int, int]
    score: float
    link: str
    article: Article
    passage_id: int
    also_in: tuple[Article, ...] = ()

    @property
    def marked(self) -> str:
        """Return the marked sentence(s)."""
        return self.text[self.highlight[0] : self.highlight[1]]


@dataclass(frozen=True)
class Answer:
    """What the bot says to a question: quotes best first, or why there are none."""

    question: str
    quotes: tuple[Quote, ...] = field(default_factory=tuple)
    answered: bool = False
    reason: str | None = None
