"""Terms: the words BM25 indexes and answering weighs, lower-cased, stop words out, stemmed."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

__all__ = ["term_coverage", "tokenize"]


# bm25s's tokenizer, word for word: runs of two or more word characters, lower-cased.
_WORDS = re.compile(r"(?u)\b\w\w+\b")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    # bm25s sets its own logger to DEBUG on import; its messages are not ours to show.
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return frozenset(STOPWORDS_EN)


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Return lower-cased, stop-word-free, stemmed tokens of each text.

    The same tokens as ``bm25s.tokenize(texts, stopwords="en", stemmer=Snowball English,
    return_ids=False)`` (tests/test_lexical_scale.py compares them), without its per-call cost
    (progress bars and a stop-word set built per text: 43 µs against 10 µs for one question).
    Answering calls this a few dozen times per question, on the question and on sentences.
    """
    stop = _stopwords()
    words = [[w for w in _WORDS.findall(text.lower()) if w not in stop] for text in texts]
    unique = list(dict.fromkeys(w for doc in words for w in doc))
    stems = dict(zip(unique, _stemmer().stemWords(unique), strict=True))
    return [[stems[w] for w in doc] for doc in words]


def term_coverage(query_terms: Iterable[str], text_terms: Iterable[str], idf: dict[str, float] | None) -> float:
    """Return the IDF-weighted share of the query's terms that occur among ``text_terms``."""
    terms = set(query_terms)
    if not terms:
        return 0.0
    present = terms.intersection(text_terms)
    weights = idf or {}
    total = sum(weights.get(t, 1.0) for t in terms)
    return sum(weights.get(t, 1.0) for t in present) / total if total else 0.0
