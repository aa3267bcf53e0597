"""An approximate dense index: a FAISS HNSW graph over the passages' vectors, keyed by passage id.

HNSW cannot remove a vector, so a removed passage is hidden (a mask over the graph's rows,
applied inside the search) until so many are hidden that the graph is rebuilt. The graph is
never changed in place: adding vectors makes a changed copy, so readers keep searching the old
one while a writer works.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np

from retrieval.atomic import write_atomic
from retrieval.errors import ConfigError

__all__ = ["QUANTIZERS", "HnswGraph"]

log = logging.getLogger(__name__)

# Vectors the scalar quantizer learns its per-dimension ranges from.
_TRAIN = 50_000
# How the graph stores its vectors: bits per dimension (candidates are scored exactly afterwards).
_CODES = {"sq4": "SQ4", "sq6": "SQ6", "sq8": "SQ8", "none": "Flat"}
QUANTIZERS = tuple(_CODES)


class HnswGraph:
    """An immutable HNSW graph; row ``r`` of the graph holds passage ``ids[r]``."""

    def __init__(self, index: Any, ids: np.ndarray) -> None:
        self._index = index
        self.ids = ids
        order = np.argsort(ids, kind="stable")
        self._sorted_ids = ids[order]
        self._sorted_rows = order
        # The file this graph was read from or written to, so that it is written only once.
        self.file_name: str | None = None

    @property
    def dim(self) -> int:
        """Return the vectors' dimension."""
        return int(self._index.d)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(
        cls, dim: int, batches: Iterator[tuple[np.ndarray, np.ndarray]], m: int, ef_construction: int, quantize: str
    ) -> HnswGraph:
        """Build a graph from ``(ids, vectors)`` batches, training the quantizer on the first vectors."""
        if quantize not in _CODES:
            raise ConfigError(f"index.quantize must be one of {', '.join(_CODES)}, not {quantize!r}")
        import faiss

        spec = f"HNSW{m}," + _CODES[quantize]
        index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
        hnsw: Any = faiss.downcast_index(index)
        hnsw.hnsw.efConstruction = ef_construction
        all_ids: list[np.ndarray] = []
        pending: list[np.ndarray] = []
        waiting = 0
        for ids, vectors in batches:
            all_ids.append(np.asarray(ids, dtype=np.int64))
            pending.append(np.ascontiguousarray(vectors, dtype=np.float32))
            waiting += len(ids)
            if index.is_trained and waiting:
                index.add(np.vstack(pending))
                pending, waiting = [], 0
            elif waiting >= _TRAIN:
                train = np.vstack(pending)
                index.train(train)
                index.add(train)
                pending, waiting = [], 0
        if pending:
            rest = np.vstack(pending)
            if not index.is_trained:
                index.train(rest)
            index.add(rest)
        ids_all = np.concatenate(all_ids) if all_ids else np.empty(0, dtype=np.int64)
        return cls(index, ids_all)

    def with_added(self, ids: np.ndarray, vectors: np.ndarray) -> HnswGraph:
        """Return a copy of the graph with more vectors (the quantizer keeps its trained ranges)."""
        import faiss

        # A memory-mapped graph is read-only, and clone_index keeps its mapped storage: copy it
        # through bytes instead.
        index = faiss.deserialize_index(faiss.serialize_index(self._index))
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return HnswGraph(index, np.concatenate([self.ids, np.asarray(ids, dtype=np.int64)]))

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Return the graph rows holding these passage ids (-1 where an id is not in the graph)."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(self.ids) or not len(ids):
            return np.full(len(ids), -1, dtype=np.int64)
        pos = np.searchsorted(self._sorted_ids, ids)
        pos = np.minimum(pos, len(self._sorted_ids) - 1)
        found = self._sorted_ids[pos] == ids
        return np.where(found, self._sorted_rows[pos], -1).astype(np.int64)

    def search(
        self, vector: np.ndarray, k: int, ef_search: int, hidden: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(ids, scores)`` of the ``k`` best rows not in ``hidden`` (a bool mask), best first."""
        import faiss

        if not len(self.ids):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        k = min(k, len(self.ids))
        params = cast(Any, faiss).SearchParametersHNSW()
        params.efSearch = max(ef_search, k)
        selector = None
        if hidden is not None and hidden.any():
            # One bit per row, little-endian within a byte, set for the rows that may be returned.
            bits = np.packbits(~hidden, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(hidden), faiss.swig_ptr(bits))
            params.sel = selector
        query = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32)
        scores, rows = self._index.search(query, k, params=params)
        keep = rows[0] >= 0
        return self.ids[rows[0][keep]], scores[0][keep]

    def reconstruct(self, rows: np.ndarray) -> np.ndarray:
        """Return the graph's copy of the vectors in these rows (approximate unless ``none``)."""
        return np.vstack([self._index.reconstruct(int(r)) for r in rows])

    def save(self, path: Path) -> None:
        """Write the graph to ``path`` and its ids beside it, each atomically."""
        import faiss

        write_atomic(_ids_path(path), lambda tmp: _save_npy(tmp, self.ids))
        write_atomic(path, lambda tmp: faiss.write_index(self._index, str(tmp)))
        self.file_name = path.name

    @classmethod
    def load(cls, path: Path) -> HnswGraph:
        """Read a saved graph, memory-mapping its vectors; raises OSError or RuntimeError."""
        import faiss

        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
        ids = np.load(_ids_path(path))
        if len(ids) != index.ntotal:
            raise ValueError(f"{path} holds {index.ntotal} vectors but {len(ids)} ids")
        graph = cls(index, ids)
        graph.file_name = path.name
        return graph


def _save_npy(tmp: Path, array: np.ndarray) -> None:
    with open(tmp, "wb") as fh:
        np.save(fh, array)


def _ids_path(path: Path) -> Path:
    return path.with_name(path.stem + ".ids.npy")
