"""BM25 that grows: a base segment plus a delta, scores like a fresh build, files memory-mapped."""

from __future__ import annotations

from pathlib import Path

import bm25s
import numpy as np
import pytest
import Stemmer

from retrieval.config import IndexConfig
from retrieval.ingest.loaders import load_file
from retrieval.ingest.sentences import split_sentences
from retrieval.search.lexical import LexicalIndex, batched
from retrieval.search.tokens import tokenize

from .conftest import SAMPLE

QUERIES = [
    "How far did the Kestrel probe travel?",
    "interest rate decision of the central bank",
    "who won the cup final",
    "wildfire evacuation orders",
    "vaccine trial results",
    "chip factory jobs",
]


@pytest.fixture(scope="module")
def corpus() -> tuple[np.ndarray, list[str]]:
    """Every sentence of the bundled sample articles: real news-like text, ~150 documents."""
    articles = [a for f in sorted(SAMPLE.glob("*.md")) for a in load_file(f)[0]]
    texts = [a.text[s:e] for a in articles for s, e in split_sentences(a.text)]
    return np.arange(10, 10 + len(texts), dtype=np.int64), texts


TRICKY = [
    "",
    "   ",
    "Don't stop: it's O'Neill's “quoted” café, a x y 1 23 4,500.75 3.75% $612m",
    "İSTANBUL Straße STRASSE ǅemal ÉCOLE école ﬁnance",
    "Σίσυφος ΣΊΣΥΦΟΣ 日本語のテキスト snake_case __dunder__ — en–dash",
    "The the THE running runs ran runner's",
]


def test_tokens_are_those_of_bm25s_itself(corpus: tuple[np.ndarray, list[str]]) -> None:
    """The index files and PostgreSQL's postings were built with bm25s's tokens: ours must not drift."""
    _, texts = corpus
    for batch in (texts, TRICKY, QUERIES, *([t] for t in TRICKY + texts[:20])):
        expected = bm25s.tokenize(
            list(batch), stopwords="en", stemmer=Stemmer.Stemmer("english"), return_ids=False, show_progress=False
        )
        assert tokenize(batch) == expected


def test_scores_equal_those_of_bm25s_on_the_same_corpus(corpus: tuple[np.ndarray, list[str]]) -> None:
    ids, texts = corpus
    ours = LexicalIndex.build_batches(batched(ids, texts, size=40), generation=1)
    reference = bm25s.BM25(k1=1.2, b=0.75)
    reference.index(tokenize(texts), show_progress=False)
    for q in QUERIES:
        terms = [t for t in tokenize([q])[0] if t in reference.vocab_dict]
        # Ours keeps scores in 16 bits: a relative error of at most 2^-11 per term.
        np.testing.assert_allclose(ours.scores(q), reference.get_scores(terms), rtol=1e-3, atol=1e-6)


def test_a_delta_ranks_like_a_fresh_build_and_removed_passages_are_gone(corpus: tuple[np.ndarray, list[str]]) -> None:
    ids, texts = corpus
    n = len(ids)
    base_end = int(n * 0.9)
    base = LexicalIndex.build(ids[:base_end], texts[:base_end], generation=1)
    removed = ids[:5]
    grown = base.updated(ids[base_end:], texts[base_end:], removed, generation=2)
    fresh = LexicalIndex.build(ids[5:], texts[5:], generation=2)
    assert sorted(grown.ids.tolist()) == sorted(fresh.ids.tolist())
    assert grown.delta_size == (n - base_end) + 5
    for q in QUERIES:
        got, got_scores, all_scores = grown.search(q, 5)
        want, want_scores, _ = fresh.search(q, 5)
        # 174 sentences is a tiny base, so a near-tie can swap (1.98 vs 2.00 for the first query).
        assert want[0] in got[:2]
        assert len(set(got.tolist()) & set(want.tolist())) >= min(4, len(want))
        # Frozen statistics: scores move by a few percent at most with a 10 % delta.
        np.testing.assert_allclose(got_scores[0], want_scores[0], rtol=0.08)
        assert not set(got.tolist()) & set(removed.tolist())
        np.testing.assert_array_equal(grown.score_of(all_scores, removed.tolist()), 0)


def test_a_removed_id_given_to_a_new_passage_scores_its_new_text(corpus: tuple[np.ndarray, list[str]]) -> None:
    ids, texts = corpus
    index = LexicalIndex.build(ids, texts, generation=1)
    reused = ids[:1]
    changed = index.updated(reused, ["The Kestrel probe reached a comet named Zorblatt."], reused, generation=2)
    got, _, all_scores = changed.search("Zorblatt comet", 3)
    assert got.tolist() == [int(reused[0])]
    assert changed.score_of(all_scores, [int(reused[0])])[0] > 0
    assert len(changed) == len(index)
    assert changed.idf(["zorblatt"])["zorblatt"] > changed.idf(["kestrel"])["kestrel"]


def test_the_index_is_saved_once_then_deltas_and_loads_memory_mapped(
    corpus: tuple[np.ndarray, list[str]], tmp_path: Path
) -> None:
    ids, texts = corpus
    first = LexicalIndex.build(ids[:-20], texts[:-20], generation=1)
    first.save(tmp_path)
    base_files = sorted(p.name for p in tmp_path.glob("lexical-1/*"))
    second = first.updated(ids[-20:], texts[-20:], ids[:3], generation=2)
    second.save(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("lexical-1/*")) == base_files  # the base is not rewritten
    assert [p.name for p in tmp_path.glob("lexical-delta-*")] == ["lexical-delta-2.npz"]
    loaded = LexicalIndex.load(tmp_path)
    assert loaded is not None and loaded.generation == 2 and len(loaded) == len(second)
    assert isinstance(loaded._base.data, np.memmap)
    for q in QUERIES:
        np.testing.assert_array_equal(loaded.scores(q), second.scores(q))
    (tmp_path / "lexical-delta-2.npz").unlink()
    assert LexicalIndex.load(tmp_path) is None


def test_small_indexes_are_rebuilt_whole_and_large_deltas_ask_for_a_new_base(
    corpus: tuple[np.ndarray, list[str]],
) -> None:
    ids, texts = corpus
    index = LexicalIndex.build(ids, texts, generation=1)
    n = len(index)
    assert not index.can_update(IndexConfig(lexical_incremental_above=n + 1), 1)
    settings = IndexConfig(lexical_incremental_above=n, lexical_delta_share=0.1)
    assert index.can_update(settings, int(0.1 * n))
    assert not index.can_update(settings, int(0.1 * n) + 1)


def test_files_of_the_older_format_are_not_read_so_the_index_is_rebuilt(tmp_path: Path) -> None:
    (tmp_path / "lexical-3").mkdir()
    (tmp_path / "lexical.json").write_text('{"generation": 3, "dir": "lexical-3", "count": 10}')
    assert LexicalIndex.load(tmp_path) is None


@pytest.mark.parametrize("k", [1, 3, 10])
def test_the_top_k_is_the_exact_best_k_with_ties_in_passage_order(corpus: tuple[np.ndarray, list[str]], k: int) -> None:
    ids, texts = corpus
    copies = LexicalIndex.build(np.arange(3 * len(ids)), texts * 3, generation=1)  # every text three times
    for q in [*QUERIES, "the", "probe probe probe"]:
        got, got_scores, all_scores = copies.search(q, k)
        rows = np.flatnonzero(all_scores > 0)
        want = rows[np.lexsort((rows, -all_scores[rows]))][:k]
        assert got.tolist() == want.tolist()
        np.testing.assert_array_equal(got_scores, all_scores[want])
