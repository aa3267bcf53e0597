"""The first stages: candidate passages from the backend, then the recency preference.

Fusion of the dense and lexical lists happens in the backend's retriever (PostgreSQL fuses in
its one search statement), by the rule ``state.fusion`` names; the formulas are in
``retrieval.search.fusion``. Duplicate collapsing removes hits later, so more are fetched than
quotes are shown.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone

from retrieval.answering.state import AnswerState
from retrieval.query import Query
from retrieval.search.fusion import Scored

__all__ = ["Candidates", "Recency", "prefer_recent", "recency_weight"]

_YEAR = re.compile(r"\b(1[89]\d\d|2\d\d\d)\b")


def recency_weight(state: AnswerState) -> float:
    """Return the recency bonus's weight for this question (0: none)."""
    search = state.config
    weight = max(search.recent_weight, search.now_weight if state.query.of_now else 0.0)
    # Reciprocal-rank scores are on another scale (about 0.03), so that fusion gets none.
    return weight if state.fusion != "rrf" else 0.0


def shown(state: AnswerState) -> int:
    """Return how many fused candidates answering looks at."""
    return state.wanted * 3 + 5


class Candidates:
    """Embed the question; fetch fused candidates and the question terms' IDF from the backend."""

    name = "candidates"

    def run(self, state: AnswerState) -> None:
        """Fill ``query_vector``, ``hits``, ``stats`` and ``idf``."""
        retriever = state.sources.retriever()
        state.query_vector = state.encoder.embed_one(state.query.text)
        depth = state.depth
        if depth is None:
            # The recent get their bonus among all the fused candidates before the cut.
            depth = max(shown(state), state.config.candidates) if recency_weight(state) > 0 else shown(state)
        state.hits = retriever.search(state.query, state.query_vector, depth, state.fusion, state.stats)
        state.idf = retriever.idf(state.query.terms)


class Recency:
    """Prefer recent articles (``search.recent_weight``, ``now_weight``); keep what answering looks at."""

    name = "recency"

    def run(self, state: AnswerState) -> None:
        """Re-rank ``hits`` with the recency bonus and cut them to the number looked at."""
        hits = prefer_recent(state.query, state.hits, recency_weight(state), state.config.recent_half_life_days)
        state.hits = hits[: shown(state)]


def prefer_recent(query: Query, hits: Sequence[Scored], weight: float, half_life_days: float) -> list[Scored]:
    """Add ``weight * 0.5^(age / half_life)`` to each hit's fused score and sort again.

    The age is counted from the newest dated article among the hits, not from the clock: news
    questions are mostly about the latest events the collection holds, and an archive searched
    years later keeps the same order. Undated articles get nothing. A question that names a year
    before the newest article's is about the past, and is left as it is. Done on the hits any
    backend returns, so every backend ranks the same.
    """
    dated = [_utc(s.article.published) for s in hits if s.article.published is not None]
    if weight <= 0 or half_life_days <= 0 or not dated:
        return list(hits)
    newest = max(dated)
    if any(int(y) < newest.year for y in _YEAR.findall(query.text)):
        return list(hits)
    boosted: list[tuple[float, Scored]] = []
    for s in hits:
        bonus = 0.0
        if s.article.published is not None:
            age = max(0.0, (newest - _utc(s.article.published)).total_seconds() / 86400)
            bonus = weight * 0.5 ** (age / half_life_days)
        boosted.append((s.hit.fused + bonus, s))
    boosted.sort(key=lambda pair: -pair[0])  # stable: ties keep the backend's order
    return [
        replace(s, hit=replace(s.hit, fused=float(score), rank=rank))
        for rank, (score, s) in enumerate(boosted, start=1)
    ]


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
