"""The real encoder, recording the texts it is asked to embed (each passage once, with its sentences)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from retrieval.models.encoder import Encoder


class CountingEncoder(Encoder):
    """Wraps the session's encoder; ``embedded`` lists every text given to embed, embed_queries or embed_passages."""

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.identity = inner.identity
        self.batch_size = inner.batch_size
        self.embedded: list[str] = []

    @property
    def texts(self) -> int:
        """How many texts were embedded so far."""
        return len(self.embedded)

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_batch(texts)

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        self.embedded += list(texts)
        return self.inner.embed(texts, progress)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded += list(texts)
        return self.inner.embed_queries(texts)

    def embed_passages(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        # One pass per passage: its sentence vectors are pooled from it, not encoded again.
        self.embedded += list(texts)
        return self.inner.embed_passages(texts, spans, progress)
