"""Hybrid search: dense (FAISS) and lexical (BM25) candidates, fused into one ranking."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from retrieval.config import SearchConfig
from retrieval.lexical import LexicalIndex
from retrieval.models import Article, Hit, Passage
from retrieval.query import Query
from retrieval.store import Store
from retrieval.vectorindex import FaissIndex

__all__ = ["FUSIONS", "Retriever", "Scored"]

FUSIONS = ("weighted", "rrf", "dense", "lexical")


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

    def search(self, query: Query, query_vector: np.ndarray, k: int, fusion: str | None = None) -> list[Scored]:
        """Return up to ``k`` hits for ``query``, best first."""
        method = fusion or self.config.fusion
        if method not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}")
        # Filters drop candidates after retrieval, so look deeper when they are on.
        depth = max(k, self.config.candidates) * (8 if query.filtered else 1)
        d_ids, _ = (
            self.vectors.search(query_vector, depth) if method != "lexical" else (np.empty(0, np.int64), np.empty(0))
        )
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


def _passes(query: Query, article: Article) -> bool:
    if query.source is not None:
        needle = query.source.lower()
        haystack = f"{article.source or ''} {article.url}".lower()
        if needle not in haystack:
            return False
    if query.since is not None or query.until is not None:
        if article.published is None:
            return False
        if query.since is not None and article.published < query.since:
            return False
        if query.until is not None and article.published > query.until:
            return False
    return True
