"""Fusion: one ranking from the dense and lexical candidate lists, by the rules every backend follows.

The local backend fuses in Python (``retrieval.search.hybrid``); PostgreSQL fuses with the same
formulas in its one search statement (``retrieval.storage.pg.search``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from retrieval.config import SearchConfig
from retrieval.domain import Article, Hit
from retrieval.query import Query

__all__ = ["FUSIONS", "Scored", "SearchStats", "background_of", "fuse", "passes", "recency_factor"]

FUSIONS = ("weighted", "rrf", "dense", "lexical")


@dataclass
class SearchStats:
    """What a search saw of the collection beyond its hits, filled in when the caller asks.

    ``top`` is the best cosine similarity of any passage to the question, ``background`` the mean
    of the passages ranked 20 to 60: how close the collection at large comes to the question.
    A question the collection answers has passages that stand out from that background; an
    off-topic one finds a flat field of loosely related passages.
    """

    top: float | None = None
    background: float | None = None

    @property
    def contrast(self) -> float | None:
        """Return how far the best passage stands out from the background (None when unknown)."""
        if self.top is None or self.background is None:
            return None
        return self.top - self.background


def background_of(scores: np.ndarray) -> float | None:
    """Return the background of a dense result list, best first (see SearchStats)."""
    n = len(scores)
    if n >= 30:
        return float(np.mean(scores[20:60]))
    if n >= 4:  # a small collection: its lower half
        return float(np.mean(scores[n // 2 :]))
    return None


@dataclass(frozen=True)
class Scored:
    """A ranked hit with what answering needs next: its article and its vector."""

    hit: Hit
    article: Article
    vector: np.ndarray


def fuse(
    method: str,
    cand: np.ndarray,
    dense: np.ndarray,
    lex: np.ndarray,
    d_ids: np.ndarray,
    l_ids: np.ndarray,
    config: SearchConfig,
) -> np.ndarray:
    """Return the fused score of each candidate (ids ``cand``) by ``method``.

    ``dense`` and ``lex`` are the candidates' cosine and BM25 scores; ``d_ids`` and ``l_ids`` the
    dense and lexical lists in rank order (for reciprocal rank fusion).
    """
    if method == "dense":
        return dense.astype(np.float32)
    top_lex = float(lex.max()) if len(lex) else 0.0
    lex_norm = lex / top_lex if top_lex > 0 else np.zeros_like(lex)
    if method == "lexical":
        return lex_norm.astype(np.float32)
    if method == "rrf":
        k = config.rrf_k
        d_rank = {int(p): r for r, p in enumerate(d_ids, start=1)}
        l_rank = {int(p): r for r, p in enumerate(l_ids, start=1)}
        big = len(cand) + 1000
        return np.array(
            [1 / (k + d_rank.get(int(p), big)) + 1 / (k + l_rank.get(int(p), big)) for p in cand],
            dtype=np.float32,
        )
    w = config.dense_weight
    # Cosine is already on a fixed scale; BM25 is not, so it is divided by the best
    # candidate's score for this query.
    return (w * dense + (1 - w) * lex_norm).astype(np.float32)


def recency_factor(published: datetime | None, now: datetime, half_life_days: float) -> float:
    """Return the factor ``search.recency_half_life_days`` multiplies a fused score by (0.8 to 1)."""
    if published is None:
        return 0.9
    age = max(0.0, (now - published).total_seconds() / 86400)
    return float(0.8 + 0.2 * 0.5 ** (age / half_life_days))


def passes(query: Query, article: Article) -> bool:
    """Return True when an article passes the question's ``source:``, ``since:`` and ``until:`` filters."""
    return query.admits(article.source, article.url, article.published)


def utc_now() -> datetime:
    """Return the current time in UTC (recency is counted from it)."""
    return datetime.now(timezone.utc)
