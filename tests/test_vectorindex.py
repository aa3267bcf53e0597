"""The dense index: exact while small, HNSW past a size, removals, merges, files; and through NewsIndex."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from retrieval.config import Config, IndexConfig
from retrieval.ingest.loaders import load_file
from retrieval.models.encoder import Encoder
from retrieval.newsindex import NewsIndex
from retrieval.search.vector import FaissIndex
from retrieval.storage.local.indexes import FAISS_NAME, LocalIndexes

from .conftest import SAMPLE

DIM = 32


def _vectors(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around 40 centres (clustered like embeddings, unlike uniform noise)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, DIM))
    x = centres[rng.integers(0, 40, n)] + 0.4 * rng.normal(size=(n, DIM))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.arange(1000, 1000 + n, dtype=np.int64), x.astype(np.float32)


def _exact(ids: np.ndarray, vectors: np.ndarray) -> FaissIndex:
    index = FaissIndex(DIM)
    index.add(ids, vectors)
    return index


def _exact_source(index: FaissIndex, ids: np.ndarray, vectors: np.ndarray) -> FaissIndex:
    """Give the index the stored vectors, as NewsIndex does with the store."""
    lookup = dict(zip(ids.tolist(), vectors, strict=True))
    index.exact_vectors = lambda wanted: np.vstack([lookup[i] for i in wanted])
    return index


def _recall(a: FaissIndex, b: FaissIndex, queries: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(a.search(q, k)[0]) & set(b.search(q, k)[0])) / k for q in queries]))


SMALL = IndexConfig(approximate_above=500, merge_above=100, max_deleted_share=0.2, ef_search=64)


def test_the_index_is_exact_up_to_the_threshold_and_a_graph_past_it() -> None:
    ids, vecs = _vectors(600)
    assert FaissIndex.build(DIM, iter([(ids[:500], vecs[:500])]), 500, 1, SMALL).kind == "flat"
    graph = FaissIndex.build(DIM, iter([(ids[:300], vecs[:300]), (ids[300:], vecs[300:])]), 600, 1, SMALL)
    _exact_source(graph, ids, vecs)
    assert graph.kind == "hnsw" and len(graph) == 600
    assert sorted(graph.ids().tolist()) == ids.tolist()
    queries = _vectors(50, seed=1)[1]
    assert _recall(graph, _exact(ids, vecs), queries) >= 0.95


def test_removed_passages_never_come_back_and_a_reused_id_finds_its_new_vector() -> None:
    ids, vecs = _vectors(600)
    index = _exact_source(FaissIndex.build(DIM, iter([(ids, vecs)]), 600, 1, SMALL), ids, vecs).copy()
    gone = ids[:50]
    index.remove(gone)
    assert len(index) == 550
    for q in vecs[:50]:
        assert not set(index.search(q, 20)[0].tolist()) & set(gone.tolist())
    # SQLite may give a new passage the id of a removed one.
    index.add(ids[:1], vecs[599:600])
    found, scores = index.search(vecs[599], 2)
    assert set(found.tolist()) == {int(ids[0]), int(ids[599])} and scores[0] == pytest.approx(1.0, abs=1e-3)
    added, removed = index.changed_ids()
    assert added.tolist() == [int(ids[0])] and removed.tolist() == gone.tolist()


def test_new_passages_wait_in_the_exact_part_until_merged_into_the_graph() -> None:
    ids, vecs = _vectors(800)
    index = FaissIndex.build(DIM, iter([(ids[:600], vecs[:600])]), 600, 1, SMALL).copy()
    index.add(ids[600:650], vecs[600:650])
    assert index.due() is None
    assert index.search(vecs[620], 1)[0].tolist() == [int(ids[620])]
    index.add(ids[650:], vecs[650:])
    assert index.due() == "merge"
    merged = _exact_source(index.merged(), ids, vecs)
    assert merged.due() is None and len(merged) == 800 and merged.kind == "hnsw"
    assert _recall(merged, _exact(ids, vecs), vecs[600:700] + 0.01) >= 0.95


def test_many_removals_or_a_shrunk_collection_ask_for_a_rebuild() -> None:
    ids, vecs = _vectors(700)
    index = FaissIndex.build(DIM, iter([(ids, vecs)]), 700, 1, SMALL).copy()
    index.remove(ids[:100])
    assert index.due() is None
    index.remove(ids[100:150])  # 150 of 700 hidden: more than 20 %
    assert index.due() == "rebuild"
    small = FaissIndex.build(DIM, iter([(ids[:390], vecs[:390])]), 700, 1, SMALL)
    assert small.due() == "rebuild"  # under 0.8 x the threshold: back to exact
    flat = FaissIndex.build(DIM, iter([(ids[:500], vecs[:500])]), 500, 1, SMALL).copy()
    flat.add(ids[500:], vecs[500:])
    assert flat.due() == "rebuild"


def test_a_graph_index_survives_saving_and_loading_and_old_graph_files_are_removed(tmp_path: Path) -> None:
    ids, vecs = _vectors(700)
    index = FaissIndex.build(DIM, iter([(ids[:600], vecs[:600])]), 600, 3, SMALL).copy()
    index.add(ids[600:], vecs[600:])
    index.remove(ids[:10])
    path = tmp_path / "index.faiss"
    index.save(path)
    loaded = FaissIndex.load(path, SMALL)
    assert loaded is not None and loaded.kind == "hnsw" and loaded.generation == 3
    assert sorted(loaded.ids().tolist()) == sorted(index.ids().tolist())
    for q in vecs[::50]:
        assert loaded.search(q, 5)[0].tolist() == index.search(q, 5)[0].tolist()
    merged = loaded.merged()
    merged.generation = 4
    merged.save(path)
    assert [p.name for p in tmp_path.glob("index-hnsw-*.faiss")] == ["index-hnsw-4.faiss"]
    assert FaissIndex.load(path, SMALL) is not None
    (tmp_path / "index-hnsw-4.faiss").unlink()
    assert FaissIndex.load(path, SMALL) is None


def test_graph_candidates_are_scored_with_exact_vectors_when_a_source_is_given() -> None:
    ids, vecs = _vectors(600)
    index = FaissIndex.build(DIM, iter([(ids, vecs)]), 600, 1, SMALL)
    approx = index.reconstruct(ids[:5])
    assert 0 < np.abs(approx - vecs[:5]).max() < 0.2  # 4-bit copies
    _exact_source(index, ids, vecs)
    assert np.array_equal(index.reconstruct(ids[:5]), vecs[:5])
    found, scores = index.search(vecs[7], 3)
    assert int(found[0]) == int(ids[7]) and scores[0] == pytest.approx(float(vecs[7] @ vecs[7]), abs=1e-6)


@pytest.mark.local_only
def test_a_news_index_switches_to_a_graph_and_writes_update_both_indexes_in_place(
    make_config: Callable[..., Config], encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = make_config()
    small = IndexConfig(
        approximate_above=20, merge_above=6, lexical_incremental_above=20, lexical_delta_share=0.5, ef_search=32
    )
    config = dataclasses.replace(base, index=small)
    index = NewsIndex.open(config, encoder=encoder, create=True)
    articles = [a for f in sorted(SAMPLE.glob("*.md")) for a in load_file(f)[0]]
    index.ingest(articles[:8])
    vectors, lexical = index.backend.indexes.load(save=False)
    assert vectors.kind == "hnsw" and len(vectors) == index.stats().passages > 20
    assert index.ask("How far did the Kestrel probe travel?").quotes[0].article.url == articles[4].url

    rebuilds: list[int] = []
    original = LocalIndexes.rebuild

    def counting(self: LocalIndexes, gen: int, vectors: FaissIndex | None = None) -> object:
        rebuilds.append(gen)
        return original(self, gen, vectors)

    monkeypatch.setattr(LocalIndexes, "rebuild", counting)
    index.ingest(articles[8:])
    assert rebuilds == []  # neither index was rebuilt: a delta for BM25, the exact part for vectors
    vectors, lexical = index.backend.indexes.load(save=False)
    assert lexical.delta_size > 0
    answer = index.ask("Who won the recount?")
    assert answer.quotes[0].article.url == articles[9].url
    index.remove(articles[4].url)
    assert all(q.article.url != articles[4].url for q in index.ask("Kestrel probe asteroid Vella", k=5).quotes)
    assert index.check().ok
    reopened = NewsIndex.open(config, encoder=encoder)
    again = reopened.ask("Who won the recount?")
    assert [q.passage_id for q in again.quotes] == [q.passage_id for q in answer.quotes]
    assert (index.backend.folder / FAISS_NAME).exists() and list(index.backend.folder.glob("index-hnsw-*.faiss"))
