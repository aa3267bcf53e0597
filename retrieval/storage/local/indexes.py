"""The local backend's index files: FAISS and BM25 built from the SQLite store, and the snapshot
answers are read from.

SQLite is the source of truth; every write bumps its generation, and each index file records
the generation it was built from. A reader holds one consistent snapshot (both indexes of one
generation) until it refreshes; a writer changes copies and swaps them in when the write is done.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from retrieval.config import IndexConfig
from retrieval.errors import StoreError
from retrieval.search.lexical import LexicalIndex
from retrieval.search.vector import FaissIndex
from retrieval.storage.local.locking import writer_active, writer_lock
from retrieval.storage.local.store import Store

__all__ = ["FAISS_NAME", "LocalIndexes"]

log = logging.getLogger(__name__)

FAISS_NAME = "index.faiss"


class LocalIndexes:
    """The vector and lexical indexes of one data directory, kept in step with its store."""

    def __init__(self, folder: Path, store: Store, settings: IndexConfig) -> None:
        self.folder = folder
        self.store = store
        self.settings = settings
        self._lock = threading.RLock()
        self._vectors: FaissIndex | None = None
        self._lexical: LexicalIndex | None = None

    def _dim(self) -> int:
        dim = self.store.get_meta("dim")
        if dim is None:
            raise StoreError(f"{self.folder} records no vector dimension; run `newsqa check --repair`")
        return int(dim)

    def load(self, save: bool, writing: bool = False) -> tuple[FaissIndex, LexicalIndex]:
        """Return the indexes, loading them from the files or rebuilding them from the store.

        Index files behind the store mean a writer is between batches (or died). While another
        process writes, a reader that already has a consistent snapshot keeps it (or takes newer
        files) rather than rebuilding on every question; a writer, or a reader when no writer is
        left, rebuilds stale indexes from the store.
        """
        with self._lock:
            gen = self.store.generation()
            vectors, lexical = self._vectors, self._lexical
            if vectors is not None and lexical is not None and vectors.generation == lexical.generation == gen:
                return vectors, lexical
            file_vectors = FaissIndex.load(self.folder / FAISS_NAME, self.settings)
            file_lexical = LexicalIndex.load(self.folder)
            files_gen = (
                file_vectors.generation
                if file_vectors is not None
                and file_lexical is not None
                and file_vectors.generation == file_lexical.generation
                else -1
            )
            if files_gen == gen:
                assert file_vectors is not None and file_lexical is not None
                vectors, lexical = file_vectors, file_lexical
            elif file_lexical is None and file_vectors is not None and file_vectors.generation == gen:
                # Only BM25 is missing or in an older format: rebuild it alone, and keep it for
                # the next process unless a writer is busy (it saves its own when done).
                log.info("rebuilding the BM25 index of %s from the store", self.folder)
                vectors, lexical = self.rebuild(gen, file_vectors)
                self._save_lexical(lexical)
            elif not writing and vectors is not None and lexical is not None and writer_active(self.folder):
                if file_vectors is not None and file_lexical is not None and files_gen > vectors.generation:
                    vectors, lexical = file_vectors, file_lexical
            else:
                log.info("rebuilding the indexes of %s from the store", self.folder)
                vectors, lexical = self.rebuild(gen)
                if save:
                    self.save(vectors, lexical)
            # An approximate index reads exact vectors of its candidates from the store.
            vectors.exact_vectors = self.store.passage_vectors
            self._vectors, self._lexical = vectors, lexical
            return vectors, lexical

    def snapshot(self) -> tuple[FaissIndex, LexicalIndex]:
        """Return the indexes answers are read from: the last consistent snapshot, once loaded."""
        with self._lock:
            if self._vectors is not None and self._lexical is not None:
                return self._vectors, self._lexical
        return self.load(save=False)

    def refresh(self) -> bool:
        """Move to the newest consistent indexes if another process changed the data directory.

        Returns True when the indexes answers are read from changed.
        """
        with self._lock:
            before = self._vectors
            if before is None or before.generation == self.store.generation():
                return False
        after, _ = self.load(save=False)
        return after is not before

    def rebuild(self, gen: int, vectors: FaissIndex | None = None) -> tuple[FaissIndex, LexicalIndex]:
        """Build both indexes from the store (BM25 only, when an up-to-date ``vectors`` is given)."""
        built = self.build_vectors(gen) if vectors is None else vectors
        lexical = LexicalIndex.build_batches(((ids, texts) for ids, texts, _ in self.store.iter_passages()), gen)
        return built, lexical

    def build_vectors(self, gen: int) -> FaissIndex:
        """Build the vector index from the stored vectors: exact or approximate by its size."""
        count = self.store.counts()[1]
        batches = ((ids, vecs) for ids, _, vecs in self.store.iter_passages())
        vectors = FaissIndex.build(self._dim(), batches, count, gen, self.settings)
        vectors.exact_vectors = self.store.passage_vectors
        return vectors

    def _updated_lexical(self, vectors: FaissIndex, gen: int) -> LexicalIndex:
        """Bring BM25 up to date with a write: a delta of the passages it changed, or a new build."""
        added, removed = vectors.changed_ids()
        current = self._lexical
        if (
            current is None
            or current.generation != vectors.origin_generation
            or not current.can_update(self.settings, len(added) + len(removed))
        ):
            return self.rebuild(gen, vectors)[1]
        # Only passages still in the store (one added and removed again within the write is gone).
        passages = self.store.passages(added.tolist())
        kept = [int(i) for i in added if int(i) in passages]
        texts = [passages[i].text for i in kept]
        return current.updated(np.array(kept, dtype=np.int64), texts, removed, gen)

    def finish_write(self, vectors: FaissIndex) -> None:
        """Save the indexes of a finished write (kept up to date batch by batch) and answer from them."""
        gen = self.store.generation()
        vectors.generation = gen
        # The vectors were kept up to date batch by batch; if their count disagrees with the store
        # (a failed batch), rebuild both from the store.
        if len(vectors) != self.store.counts()[1]:
            vectors, lexical = self.rebuild(gen)
        else:
            lexical = self._updated_lexical(vectors, gen)
            due = vectors.due()
            if due == "merge":
                vectors = vectors.merged()
            elif due == "rebuild":
                vectors = self.build_vectors(gen)
        self.save(vectors, lexical)
        self.use(vectors, lexical)

    def use(self, vectors: FaissIndex, lexical: LexicalIndex) -> None:
        """Answer from these indexes from now on."""
        with self._lock:
            self._vectors, self._lexical = vectors, lexical

    def _save_lexical(self, lexical: LexicalIndex) -> None:
        try:
            with writer_lock(self.folder, wait=0):
                if self.store.generation() == lexical.generation:
                    lexical.save(self.folder)
        except (StoreError, OSError) as exc:  # a writer is busy, or the folder is read-only
            log.debug("BM25 index of %s not saved: %s", self.folder, exc)

    def save(self, vectors: FaissIndex, lexical: LexicalIndex) -> None:
        """Write both index files (each atomically)."""
        vectors.save(self.folder / FAISS_NAME)
        lexical.save(self.folder)

    def problems(self, passage_ids: list[int]) -> list[str]:
        """Return how the index files disagree with the store, which holds ``passage_ids``."""
        problems: list[str] = []
        passages = len(passage_ids)
        gen = self.store.generation()
        expected = np.array(sorted(passage_ids), dtype=np.int64)
        vectors = FaissIndex.load(self.folder / FAISS_NAME, self.settings)
        lexical = LexicalIndex.load(self.folder)
        if passages and vectors is None:
            problems.append("the vector index file is missing or unreadable")
        elif vectors is not None:
            if vectors.generation != gen:
                problems.append(f"the vector index is from write {vectors.generation}, the store is at {gen}")
            if not np.array_equal(np.sort(vectors.ids()), expected):
                problems.append(f"the vector index holds {len(vectors)} passages, the store {passages}")
        if passages and lexical is None:
            problems.append("the lexical index is missing or unreadable")
        elif lexical is not None:
            if lexical.generation != gen:
                problems.append(f"the lexical index is from write {lexical.generation}, the store is at {gen}")
            if not np.array_equal(np.sort(lexical.ids), expected):
                problems.append(f"the lexical index holds {len(lexical)} passages, the store {passages}")
        return problems

    def repair(self) -> None:
        """Rebuild both indexes from the store and save them (the caller holds the writer lock)."""
        vectors, lexical = self.rebuild(self.store.generation())
        self.save(vectors, lexical)
        self.use(vectors, lexical)
