"""Questions: validation, normalisation and the filters a user can type inside them."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property

from retrieval.errors import QuestionError
from retrieval.search.tokens import tokenize

__all__ = ["Query", "parse_question"]

_FILTER = re.compile(r"(?<!\S)(since|until|source):(\"[^\"]*\"|\S+)", re.I)
_TAG = re.compile(r"</?[A-Za-z][^<>]{0,200}>")
_MARKDOWN = re.compile(r"(\*\*|__|~~|`+|^#+\s|^>\s)", re.M)
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_SPACE = re.compile(r"\s+")
# Words by which a question places itself in the present: it asks about the latest news.
_NOW = re.compile(
    r"\b(?:(?:this|last|next|past|coming)\s+(?:week|weekend|month|year|season|summer|winter|spring|fall|autumn)"
    r"|today|tonight|yesterday|tomorrow|recent|recently|latest|newest|upcoming|currently|now|soon|so\s+far"
    r"|as\s+of|these\s+days|(?:mon|tues|wednes|thurs|fri|satur|sun)day)\b",
    re.I,
)
_NEW = re.compile(r"\bnew\b")  # lower case: "a new song", not "New York"


@dataclass(frozen=True)
class Query:
    """A question ready to search: its text and its filters."""

    text: str
    since: datetime | None = None
    until: datetime | None = None
    source: str | None = None
    # The question speaks of the present ("this week", "on Sunday", "latest", "a new ..."), so it
    # is about the newest articles on its subject rather than older ones.
    of_now: bool = False

    @cached_property
    def terms(self) -> list[str]:
        """Return the question's terms as BM25 has them (made once, however often they are read)."""
        return tokenize([self.text])[0]

    @property
    def filtered(self) -> bool:
        """Return True when a filter narrows the articles."""
        return self.since is not None or self.until is not None or self.source is not None

    def filters_text(self) -> str:
        """Return the filters as a user types them: "source:norland since:2025-01-01"."""
        parts = []
        if self.source is not None:
            parts.append(f'source:"{self.source}"' if " " in self.source else f"source:{self.source}")
        if self.since is not None:
            parts.append(f"since:{self.since.date().isoformat()}")
        if self.until is not None:
            parts.append(f"until:{self.until.date().isoformat()}")
        return " ".join(parts)

    def admits(self, source: str | None, url: str, published: datetime | None) -> bool:
        """Return True when an article with this outlet, URL and date passes the filters."""
        if self.source is not None and self.source.lower() not in f"{source or ''} {url}".lower():
            return False
        if self.since is not None or self.until is not None:
            if published is None:
                return False
            if self.since is not None and published < self.since:
                return False
            if self.until is not None and published > self.until:
                return False
        return True


def _date(value: str, name: str, end: bool) -> datetime:
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        raise QuestionError(f"{name}: wants a date written YYYY-MM-DD, not {value!r}") from None
    return day.replace(hour=23, minute=59, second=59) if end else day


def parse_question(question: str, max_chars: int = 2000) -> Query:
    """Validate a question and split off its ``since:``, ``until:`` and ``source:`` filters."""
    if not isinstance(question, str) or not question.strip():
        raise QuestionError("the question is empty; ask something about the news")
    if len(question) > max_chars:
        raise QuestionError(f"the question is {len(question):,} characters long; the limit is {max_chars:,}")
    since = until = None
    source = None
    for m in _FILTER.finditer(question):
        name, value = m.group(1).lower(), m.group(2).strip('"')
        if name == "since":
            since = _date(value, "since", end=False)
        elif name == "until":
            until = _date(value, "until", end=True)
        else:
            source = value
    text = _FILTER.sub(" ", question)
    # Markup is not meaning: search on the words a person would read.
    text = html.unescape(_TAG.sub(" ", text))
    text = _MARKDOWN.sub(" ", _LINK.sub(r"\1", text))
    text = _SPACE.sub(" ", text).strip()
    if not any(ch.isalnum() for ch in text):
        raise QuestionError("the question has no words to search for")
    return Query(text, since, until, source, bool(_NOW.search(text) or _NEW.search(text)))
