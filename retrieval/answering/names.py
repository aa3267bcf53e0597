"""The names and numbers a question mentions, to check that a passage is about them.

A passage can be close to a question in embedding space and share most of its words while being
about another person, place or event; a question's names and numbers are what an answer must
not do without. Names are runs of capitalised words after the first word (which is capitalised
anyway), joined across "of", "the", "de" and "and"; numbers are digit runs. Each is reduced to
the lexical index's terms, so "Norland's" matches "Norland".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from retrieval.search.tokens import tokenize

__all__ = ["name_share", "question_names"]

_LINK = r"(?:\s+(?:of|the|de|del|da|von|van|and|&))*"
_NAME = re.compile(rf"\b[A-Z][\w'’.-]*(?:{_LINK}\s+[A-Z][\w'’.-]*)*|\b\d[\d,.]*\d\b|\b\d\b")


def question_names(question: str, terms: Callable[[Sequence[str]], list[list[str]]] = tokenize) -> list[frozenset[str]]:
    """Return the lexical terms of each name or number in ``question`` (its first word excepted)."""
    names: list[frozenset[str]] = []
    first = len(question) - len(question.lstrip())
    for match in _NAME.finditer(question):
        text = match.group(0)
        if match.start() == first:  # the first word is capitalised because it starts the sentence
            text = text.partition(" ")[2]
        name = frozenset(terms([text])[0]) if text else frozenset()
        if name and name not in names:
            names.append(name)
    return names


def name_share(names: Sequence[frozenset[str]], passage_terms: Iterable[str]) -> float:
    """Return the share of the names whose terms all occur in the passage (1.0 without names)."""
    if not names:
        return 1.0
    present = set(passage_terms)
    return sum(1 for name in names if name <= present) / len(names)
