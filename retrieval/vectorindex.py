"""The dense index: FAISS inner product over unit vectors, keyed by passage id."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.atomic import write_atomic

__all__ = ["FaissIndex", "VectorIndex"]

log = logging.getLogger(__name__)


class VectorIndex:
    """Add, remove and search vectors by passage id."""

    dim: int

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add ``vectors`` (shape ``(n, dim)``, float32) under ``ids`` (int64)."""
        raise NotImplementedError

    def remove(self, ids: np.ndarray) -> None:
        """Remove the vectors of these ids."""
        raise NotImplementedError

    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(ids, scores)`` of the ``k`` nearest vectors, best first."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class FaissIndex(VectorIndex):
    """Exact search with ``IndexIDMap2(IndexFlatIP)``: supports removal and reconstruction."""

    def __init__(self, dim: int, index: Any = None, generation: int = 0) -> None:
        import faiss

        self.dim = dim
        self._index: Any = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.generation = generation

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self._index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64)
            )

    def remove(self, ids: np.ndarray) -> None:
        if len(ids):
            self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))

    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(self)
        if n == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        scores, ids = self._index.search(np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32), min(k, n))
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def copy(self) -> FaissIndex:
        """Return an independent copy, for a writer to change while readers search this one."""
        import faiss

        return FaissIndex(self.dim, faiss.clone_index(self._index), self.generation)

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """Return the stored vectors of these ids."""
        return np.vstack([self._index.reconstruct(int(i)) for i in ids])

    def ids(self) -> np.ndarray:
        """Return every stored id."""
        import faiss

        return faiss.vector_to_array(self._index.id_map)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def save(self, path: Path) -> None:
        """Write the index and its generation stamp atomically."""
        import faiss

        write_atomic(path, lambda tmp: faiss.write_index(self._index, str(tmp)))
        stamp = json.dumps({"generation": self.generation, "count": len(self), "dim": self.dim})
        write_atomic(path.with_suffix(".json"), lambda tmp: tmp.write_text(stamp))

    @classmethod
    def load(cls, path: Path) -> FaissIndex | None:
        """Return the saved index, or None when it is missing or unreadable."""
        import faiss

        stamp_path = path.with_suffix(".json")
        if not path.exists() or not stamp_path.exists():
            return None
        try:
            stamp = json.loads(stamp_path.read_text())
            index = faiss.read_index(str(path))
        except (OSError, RuntimeError, ValueError) as exc:
            log.warning("ignoring unreadable index %s: %s", path, exc)
            return None
        if index.ntotal != stamp.get("count"):
            return None
        return cls(int(stamp["dim"]), index, int(stamp["generation"]))
