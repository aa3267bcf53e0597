"""Hybrid search: dense (FAISS) and lexical (BM25) candidates, fused into one ranking."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import numpy as np

from retrieval.config import SearchConfig
from retrieval.lexical import LexicalIndex
from retrieval.models import Article, Hit, Passage
from retrieval.query import Query
from retrieval.store import Store
from retrieval.vectorindex import FaissIndex

__all__ = ["FUSIONS", "Retriever", "Scored", "SearchStats", "background_of", "prefer_recent"]

FUSIONS = ("weighted", "rrf", "dense", "lexical")
_YEAR = re.compile(r"\b(1[89]\d\d|2\d\d\d)\b")


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


class Retriever:
    """Find the passages that best match a query."""

    def __init__(self, store: Store, vectors: FaissIndex, lexical: LexicalIndex, config: SearchConfig) -> None:
        self.store = store
        self.vectors = vectors
        self.lexical = lexical
        self.config = config

    def search(
        self,
        query: Query,
        query_vector: np.ndarray,
        k: int,
        fusion: str | None = None,
        stats: SearchStats | None = None,
    ) -> list[Scored]:
        """Return up to ``k`` hits for ``query``, best first; fill ``stats`` if given."""
        method = fusion or self.config.fusion
        if method not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}")
        # Filters drop candidates after retrieval, so look deeper when they are on.
        depth = max(k, self.config.candidates) * (8 if query.filtered else 1)
        d_ids, d_scores = (
            self.vectors.search(query_vector, depth) if method != "lexical" else (np.empty(0, np.int64), np.empty(0))
        )
        if stats is not None and len(d_scores):
            stats.top, stats.background = float(d_scores[0]), background_of(d_scores)
        if method != "dense":
            l_ids, _, all_lex = self.lexical.search(query.text, depth)
        else:
            l_ids, all_lex = np.empty(0, np.int64), np.empty(0)
        candidates = list(dict.fromkeys([int(i) for i in d_ids] + [int(i) for i in l_ids]))
        if not candidates:
            return []
        cand = np.array(candidates, dtype=np.int64)
        vecs = self.vectors.reconstruct(cand)
        dense = vecs @ query_vector
        lex = self.lexical.score_of(all_lex, candidates) if len(all_lex) else np.zeros(len(cand), np.float32)
        fused = self._fuse(method, cand, dense, lex, d_ids, l_ids)
        passages = self.store.passages(candidates)
        articles = self.store.articles(p.article_id for p in passages.values())
        if self.config.recency_half_life_days > 0:
            fused = fused * self._recency(cand, passages, articles)
        order = np.argsort(-fused, kind="stable")
        out: list[Scored] = []
        for i in order:
            pid = int(cand[i])
            passage = passages.get(pid)
            if passage is None:  # removed by another process since the index was loaded
                continue
            article = articles[passage.article_id]
            if not _passes(query, article):
                continue
            hit = Hit(passage, float(dense[i]), float(lex[i]), float(fused[i]), len(out) + 1)
            out.append(Scored(hit, article, vecs[i]))
            if len(out) >= k:
                break
        return out

    def _fuse(
        self, method: str, cand: np.ndarray, dense: np.ndarray, lex: np.ndarray, d_ids: np.ndarray, l_ids: np.ndarray
    ) -> np.ndarray:
        if method == "dense":
            return dense.astype(np.float32)
        top_lex = float(lex.max()) if len(lex) else 0.0
        lex_norm = lex / top_lex if top_lex > 0 else np.zeros_like(lex)
        if method == "lexical":
            return lex_norm.astype(np.float32)
        if method == "rrf":
            k = self.config.rrf_k
            d_rank = {int(p): r for r, p in enumerate(d_ids, start=1)}
            l_rank = {int(p): r for r, p in enumerate(l_ids, start=1)}
            big = len(cand) + 1000
            return np.array(
                [1 / (k + d_rank.get(int(p), big)) + 1 / (k + l_rank.get(int(p), big)) for p in cand],
                dtype=np.float32,
            )
        w = self.config.dense_weight
        # Cosine is already on a fixed scale; BM25 is not, so it is divided by the best
        # candidate's score for this query.
        return (w * dense + (1 - w) * lex_norm).astype(np.float32)

    def _recency(self, cand: np.ndarray, passages: dict[int, Passage], articles: dict[str, Article]) -> np.ndarray:
        now = datetime.now(timezone.utc)
        half = self.config.recency_half_life_days
        factors = []
        for pid in cand:
            p = passages.get(int(pid))
            published = articles[p.article_id].published if p else None
            if published is None:
                factors.append(0.9)
                continue
            age = max(0.0, (now - published).total_seconds() / 86400)
            factors.append(0.8 + 0.2 * 0.5 ** (age / half))
        return np.array(factors, dtype=np.float32)


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


def _passes(query: Query, article: Article) -> bool:
    return query.admits(article.source, article.url, article.published)
