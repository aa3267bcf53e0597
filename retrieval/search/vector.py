"""The dense index: FAISS inner product over unit vectors, keyed by passage id.

Small collections are searched exactly (``IndexIDMap2(IndexFlatIP)``). Past
``index.approximate_above`` passages the index is an HNSW graph (``retrieval.search.ann``) built
from the stored vectors, plus a small exact index of the passages added since the graph was
built; both are searched and their results merged. ``maintain`` decides when the exact part is
merged into the graph, when the graph is rebuilt (too many removals) and when to switch kind.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.atomic import write_atomic
from retrieval.config import IndexConfig
from retrieval.search.ann import HnswGraph

__all__ = ["FaissIndex", "VectorIndex"]

log = logging.getLogger(__name__)

# Going back to exact search only below this share of approximate_above, so that a collection
# hovering around the threshold does not switch at every write.
_HYSTERESIS = 0.8


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


def _flat(dim: int) -> Any:
    import faiss

    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def _threads(n: int) -> None:
    import faiss

    # OpenMP keeps this per calling thread, so a writer's build does not change a reader's search.
    if n > 0:
        faiss.omp_set_num_threads(n)


class FaissIndex(VectorIndex):
    """Exact while small, an HNSW graph plus an exact side index once large; see the module doc.

    ``changes`` records the ids added and removed since this object was made by ``copy()``, so
    that a writer can bring the lexical index up to date with the same passages.
    """

    def __init__(
        self,
        dim: int,
        index: Any = None,
        generation: int = 0,
        *,
        graph: HnswGraph | None = None,
        hidden: np.ndarray | None = None,
        settings: IndexConfig | None = None,
    ) -> None:
        self.dim = dim
        # Exact: everything when there is no graph, else the passages added since it was built.
        self._index: Any = index if index is not None else _flat(dim)
        self._graph = graph
        # Graph rows whose passages were removed.
        self._hidden = hidden if hidden is not None else np.zeros(len(graph) if graph else 0, dtype=bool)
        self.generation = generation
        self.settings = settings or IndexConfig()
        self.origin_generation = generation
        self.added: list[np.ndarray] = []
        self.removed: list[np.ndarray] = []
        # Where exact vectors of graph passages come from (the store); else the graph's own copy.
        self.exact_vectors: Callable[[Sequence[int]], np.ndarray] | None = None

    # -- kind ----------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """Return ``"flat"`` (exact) or ``"hnsw"`` (approximate)."""
        return "flat" if self._graph is None else "hnsw"

    @classmethod
    def build(
        cls,
        dim: int,
        batches: Iterator[tuple[np.ndarray, np.ndarray]],
        count: int,
        generation: int,
        settings: IndexConfig,
    ) -> FaissIndex:
        """Build the kind of index that suits ``count`` passages from ``(ids, vectors)`` batches."""
        _threads(settings.build_threads)
        if count <= settings.approximate_above:
            index = cls(dim, generation=generation, settings=settings)
            for ids, vectors in batches:
                index.add(ids, vectors)
        else:
            graph = HnswGraph.build(dim, batches, settings.hnsw_m, settings.ef_construction, settings.quantize)
            index = cls(dim, generation=generation, graph=graph, settings=settings)
        _threads(settings.threads)
        return index

    def due(self) -> str | None:
        """Return what a writer should do now: ``"rebuild"``, ``"merge"`` or None."""
        s = self.settings
        n = len(self)
        if self._graph is None:
            return "rebuild" if n > s.approximate_above else None
        if n < s.approximate_above * _HYSTERESIS:
            return "rebuild"
        if self._hidden.sum() > s.max_deleted_share * max(len(self._graph), 1):
            return "rebuild"
        if self._index.ntotal > s.merge_above:
            return "merge"
        return None

    def merged(self) -> FaissIndex:
        """Return a copy whose exact side index has been added into (a copy of) the graph."""
        assert self._graph is not None
        _threads(self.settings.build_threads)
        ids = self._side_ids()
        vectors = self._index.index.reconstruct_n(0, self._index.ntotal) if len(ids) else None
        graph = self._graph.with_added(ids, vectors) if vectors is not None else self._graph
        _threads(self.settings.threads)
        hidden = np.concatenate([self._hidden, np.zeros(len(ids), dtype=bool)])
        out = FaissIndex(self.dim, None, self.generation, graph=graph, hidden=hidden, settings=self.settings)
        out.exact_vectors = self.exact_vectors
        return out

    # -- changing ------------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            ids = np.ascontiguousarray(ids, dtype=np.int64)
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
            self.added.append(ids)

    def remove(self, ids: np.ndarray) -> None:
        if not len(ids):
            return
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        self._index.remove_ids(ids)
        if self._graph is not None:
            rows = self._graph.rows_of(ids)
            rows = rows[rows >= 0]
            if len(rows):
                self._hidden = self._hidden.copy()
                self._hidden[rows] = True
        self.removed.append(ids)

    def copy(self) -> FaissIndex:
        """Return an independent copy, for a writer to change while readers search this one.

        The graph is shared (it is never changed in place); the exact part is cloned.
        """
        import faiss

        out = FaissIndex(
            self.dim,
            faiss.clone_index(self._index),
            self.generation,
            graph=self._graph,
            hidden=self._hidden.copy(),
            settings=self.settings,
        )
        out.exact_vectors = self.exact_vectors
        return out

    def changed_ids(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(added, removed)`` ids since ``copy()``; an id removed then added is in both."""
        empty = np.empty(0, dtype=np.int64)
        added = np.concatenate(self.added) if self.added else empty
        removed = np.concatenate(self.removed) if self.removed else empty
        return added, removed

    # -- reading -------------------------------------------------------------------------------
    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        _threads(self.settings.threads)
        ids, scores = self._search_exact(vector, k)
        if self._graph is None:
            return ids, scores
        g_ids, g_scores = self._graph.search(vector, k + k // 2, self.settings.ef_search, self._hidden)
        g_ids, g_scores = self._rescored(vector, g_ids, g_scores, k)
        if not len(ids):
            return g_ids, g_scores
        all_ids = np.concatenate([g_ids, ids])
        all_scores = np.concatenate([g_scores, scores])
        order = np.argsort(-all_scores, kind="stable")[:k]
        return all_ids[order], all_scores[order]

    def _rescored(
        self, vector: np.ndarray, ids: np.ndarray, scores: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Score the graph's candidates with their exact vectors and keep the best ``k``.

        The graph's quantized vectors blur near-ties; the graph returns half as many again as asked
        and the exact cosine picks among them (recall@10 0.96 -> 0.99 at 100k, docs/performance.md).
        """
        if self.exact_vectors is not None and len(ids):
            # KeyError: a passage removed by another process meanwhile; keep the graph's scores.
            with contextlib.suppress(KeyError, ValueError):
                scores = self.exact_vectors(ids.tolist()) @ np.asarray(vector, dtype=np.float32).reshape(-1)
        order = np.argsort(-scores, kind="stable")[:k]
        return ids[order], scores[order].astype(np.float32)

    def _search_exact(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = int(self._index.ntotal)
        if n == 0 or k < 1:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        scores, ids = self._index.search(np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32), min(k, n))
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """Return the stored vectors of these ids (exact: from the store for graph passages)."""
        if self._graph is None:
            return np.vstack([self._index.reconstruct(int(i)) for i in ids])
        side = set(self._side_ids().tolist())
        in_graph = [int(i) for i in ids if int(i) not in side]
        exact: dict[int, np.ndarray] = {}
        if in_graph and self.exact_vectors is not None:
            try:
                exact = dict(zip(in_graph, self.exact_vectors(in_graph), strict=True))
            except (KeyError, ValueError):  # a passage removed by another process meanwhile
                exact = {}
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        missing: list[int] = []
        for n, i in enumerate(ids):
            pid = int(i)
            if pid in side:
                out[n] = self._index.reconstruct(pid)
            elif pid in exact:
                out[n] = exact[pid]
            else:
                missing.append(n)
        if missing:
            rows = self._graph.rows_of(np.asarray([ids[n] for n in missing], dtype=np.int64))
            out[missing] = self._graph.reconstruct(np.maximum(rows, 0))
        return out

    def _side_ids(self) -> np.ndarray:
        import faiss

        return faiss.vector_to_array(self._index.id_map)

    def ids(self) -> np.ndarray:
        """Return every stored id."""
        side = self._side_ids()
        if self._graph is None:
            return side
        return np.concatenate([self._graph.ids[~self._hidden], side])

    def __len__(self) -> int:
        graph = len(self._graph) - int(self._hidden.sum()) if self._graph is not None else 0
        return graph + int(self._index.ntotal)

    # -- files ---------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the index and its generation stamp (``path`` with ``.json``) atomically.

        The exact part goes to ``path``; a graph to its own file named after the generation it was
        made at, written once and then only referred to, so readers may keep it memory-mapped.
        """
        import faiss

        stamp: dict[str, Any] = {"generation": self.generation, "count": len(self), "dim": self.dim}
        stamp["kind"] = self.kind
        stamp["exact"] = int(self._index.ntotal)
        if self._graph is not None:
            name = self._graph.file_name
            if name is None or not (path.parent / name).exists():
                name = f"{path.stem}-hnsw-{self.generation}.faiss"
                self._graph.save(path.parent / name)
            hidden_name = f"{path.stem}.hidden.npy"
            write_atomic(path.parent / hidden_name, lambda tmp: _save_npy(tmp, np.flatnonzero(self._hidden)))
            stamp.update(graph=name, graph_rows=len(self._graph), hidden=int(self._hidden.sum()))
        write_atomic(path, lambda tmp: faiss.write_index(self._index, str(tmp)))
        write_atomic(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(stamp)))
        keep = stamp.get("graph")
        for old in path.parent.glob(f"{path.stem}-hnsw-*.faiss"):
            if old.name != keep:
                old.unlink(missing_ok=True)
                old.with_name(old.stem + ".ids.npy").unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path, settings: IndexConfig | None = None) -> FaissIndex | None:
        """Return the saved index, or None when it is missing, unreadable or incomplete."""
        import faiss

        stamp_path = path.with_suffix(".json")
        if not path.exists() or not stamp_path.exists():
            return None
        try:
            stamp = json.loads(stamp_path.read_text())
            index = faiss.read_index(str(path))
            graph = hidden = None
            if stamp.get("kind", "flat") == "hnsw":
                graph = HnswGraph.load(path.parent / stamp["graph"])
                hidden = np.zeros(len(graph), dtype=bool)
                hidden[np.load(path.parent / f"{path.stem}.hidden.npy")] = True
                if len(graph) != stamp["graph_rows"] or int(hidden.sum()) != stamp["hidden"]:
                    return None
        except (OSError, RuntimeError, ValueError, KeyError, IndexError) as exc:
            log.warning("ignoring unreadable index %s: %s", path, exc)
            return None
        out = cls(int(stamp["dim"]), index, int(stamp["generation"]), graph=graph, hidden=hidden, settings=settings)
        if len(out) != stamp.get("count"):
            return None
        return out


def _save_npy(tmp: Path, array: np.ndarray) -> None:
    with open(tmp, "wb") as fh:
        np.save(fh, array)
