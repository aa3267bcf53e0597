"""Hybrid search over in-memory indexes: a vector index and a BM25 index, fused into one ranking."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

from retrieval.config import SearchConfig
from retrieval.domain import Article, Hit, Passage
from retrieval.query import Query
from retrieval.search.fusion import FUSIONS, Scored, SearchStats, background_of, fuse, passes, recency_factor, utc_now
from retrieval.search.lexical import LexicalIndex

__all__ = ["HybridRetriever", "Rows", "VectorSearch"]


class VectorSearch(Protocol):
    """A vector index: nearest passages to a unit vector, and the vectors it holds."""

    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(ids, cosines)`` of the ``k`` nearest passages, best first."""
        ...

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """Return the vectors of these passages, in order."""
        ...


class Rows(Protocol):
    """Where the passages and articles of the hits are read from."""

    def passages(self, ids: Iterable[int]) -> dict[int, Passage]:
        """Return the passages with these ids (those since removed are missing)."""
        ...

    def articles(self, ids: Iterable[str]) -> dict[str, Article]:
        """Return the articles with these ids."""
        ...


class HybridRetriever:
    """Find the passages that best match a query in a vector index and a BM25 index."""

    def __init__(self, rows: Rows, vectors: VectorSearch, lexical: LexicalIndex, config: SearchConfig) -> None:
        self.rows = rows
        self.vectors = vectors
        self.lexical = lexical
        self.config = config

    def idf(self, terms: Sequence[str]) -> dict[str, float]:
        """Return the inverse document frequency of each term."""
        return self.lexical.idf(terms)

    def search(
        self, query: Query, query_vector: np.ndarray, k: int, fusion: str, stats: SearchStats | None = None
    ) -> list[Scored]:
        """Return up to ``k`` hits for ``query``, best first; fill ``stats`` if given."""
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}")
        # Filters drop candidates after retrieval, so look deeper when they are on.
        depth = max(k, self.config.candidates) * (8 if query.filtered else 1)
        d_ids, d_scores = (
            self.vectors.search(query_vector, depth) if fusion != "lexical" else (np.empty(0, np.int64), np.empty(0))
        )
        if stats is not None and len(d_scores):
            stats.top, stats.background = float(d_scores[0]), background_of(d_scores)
        if fusion != "dense":
            l_ids, _, all_lex = self.lexical.search_terms(query.terms, depth)
        else:
            l_ids, all_lex = np.empty(0, np.int64), np.empty(0)
        candidates = list(dict.fromkeys([int(i) for i in d_ids] + [int(i) for i in l_ids]))
        if not candidates:
            return []
        cand = np.array(candidates, dtype=np.int64)
        vecs = self.vectors.reconstruct(cand)
        dense = vecs @ query_vector
        lex = self.lexical.score_of(all_lex, candidates) if len(all_lex) else np.zeros(len(cand), np.float32)
        fused = fuse(fusion, cand, dense, lex, d_ids, l_ids, self.config)
        passages = self.rows.passages(candidates)
        articles = self.rows.articles(p.article_id for p in passages.values())
        half_life = self.config.recency_half_life_days
        if half_life > 0:
            now = utc_now()
            factors = [
                recency_factor(articles[p.article_id].published, now, half_life) if (p := passages.get(int(i))) else 0.9
                for i in cand
            ]
            fused = fused * np.array(factors, dtype=np.float32)
        order = np.argsort(-fused, kind="stable")
        out: list[Scored] = []
        for i in order:
            pid = int(cand[i])
            passage = passages.get(pid)
            if passage is None:  # removed by another process since the index was loaded
                continue
            article = articles[passage.article_id]
            if not passes(query, article):
                continue
            hit = Hit(passage, float(dense[i]), float(lex[i]), float(fused[i]), len(out) + 1)
            out.append(Scored(hit, article, vecs[i]))
            if len(out) >= k:
                break
        return out
