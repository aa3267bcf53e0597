"""The lexical index: BM25 (bm25s, Lucene variant) over stemmed words, keyed by passage id."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.atomic import write_atomic

__all__ = ["LexicalIndex", "term_coverage", "tokenize"]

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _bm25s() -> Any:
    import bm25s

    # bm25s sets its own logger to DEBUG on import; its messages are not ours to show.
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Return lower-cased, stop-word-free, stemmed tokens of each text."""
    bm25s = _bm25s()
    return bm25s.tokenize(  # type: ignore[no-any-return]
        list(texts), stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False
    )


def term_coverage(query_terms: Iterable[str], text_terms: Iterable[str], idf: dict[str, float] | None) -> float:
    """Return the IDF-weighted share of the query's terms that occur among ``text_terms``."""
    terms = set(query_terms)
    if not terms:
        return 0.0
    present = terms.intersection(text_terms)
    weights = idf or {}
    total = sum(weights.get(t, 1.0) for t in terms)
    return sum(weights.get(t, 1.0) for t in present) / total if total else 0.0


class LexicalIndex:
    """BM25 scores of every passage for a query; rebuilt whole from the store when stale."""

    def __init__(self, ids: np.ndarray, model: Any, generation: int) -> None:
        self.ids = ids
        self._model = model
        self.generation = generation
        self._row = {int(pid): row for row, pid in enumerate(ids)}

    @classmethod
    def build(cls, ids: np.ndarray, texts: Sequence[str], generation: int) -> LexicalIndex:
        """Index ``texts`` under passage ``ids``."""
        model = _bm25s().BM25(k1=1.2, b=0.75)
        if len(texts):
            model.index(tokenize(texts), show_progress=False)
        return cls(np.asarray(ids, dtype=np.int64), model, generation)

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, query: str) -> np.ndarray:
        """Return the BM25 score of every passage (aligned with ``self.ids``)."""
        if not len(self.ids):
            return np.empty(0, dtype=np.float32)
        tokens = tokenize([query])[0]
        vocab = self._model.vocab_dict
        known = [t for t in tokens if t in vocab]
        if not known:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._model.get_scores(known), dtype=np.float32)

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(ids, scores, all_scores)``: the ``k`` best passages and every passage's score."""
        all_scores = self.scores(query)
        if not len(all_scores):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32), all_scores
        k = min(k, len(all_scores))
        top = np.argpartition(-all_scores, k - 1)[:k]
        top = top[np.argsort(-all_scores[top])]
        top = top[all_scores[top] > 0]
        return self.ids[top], all_scores[top], all_scores

    def idf(self, terms: Sequence[str]) -> dict[str, float]:
        """Return the inverse document frequency of each stemmed term (unknown terms: the maximum)."""
        n = max(len(self.ids), 1)
        vocab = getattr(self._model, "vocab_dict", None) or {}
        scores = getattr(self._model, "scores", None)
        indptr = scores.get("indptr") if isinstance(scores, dict) else None
        out: dict[str, float] = {}
        for term in terms:
            col = vocab.get(term)
            df = int(indptr[col + 1] - indptr[col]) if indptr is not None and col is not None else 0
            out[term] = float(np.log(1 + (n - df + 0.5) / (df + 0.5)))
        return out

    def score_of(self, all_scores: np.ndarray, passage_ids: Sequence[int]) -> np.ndarray:
        """Pick the scores of some passages out of ``all_scores``."""
        return np.array([all_scores[self._row[p]] if p in self._row else 0.0 for p in passage_ids], dtype=np.float32)

    def save(self, folder: Path) -> None:
        """Write the index into a fresh folder and point ``lexical.json`` at it atomically."""
        target = folder / f"lexical-{self.generation}"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        if len(self.ids):
            self._model.save(str(target), show_progress=False)
        np.save(target / "ids.npy", self.ids)
        pointer = folder / "lexical.json"
        stamp = json.dumps({"generation": self.generation, "dir": target.name, "count": len(self.ids)})
        write_atomic(pointer, lambda tmp: tmp.write_text(stamp))
        for old in folder.glob("lexical-*"):
            if old.name != target.name and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex | None:
        """Return the saved index, or None when it is missing or unreadable."""
        bm25s = _bm25s()
        pointer = folder / "lexical.json"
        if not pointer.exists():
            return None
        try:
            stamp = json.loads(pointer.read_text())
            target = folder / stamp["dir"]
            ids = np.load(target / "ids.npy")
            if len(ids) != stamp["count"]:
                return None
            model = bm25s.BM25.load(str(target), mmap=True, show_progress=False) if len(ids) else bm25s.BM25()
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring unreadable lexical index in %s: %s", folder, exc)
            return None
        return cls(ids, model, int(stamp["generation"]))
