"""The confidence behind "not found": names, and how far the best passage stands out."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from retrieval.answering.abstention import CONTRAST_CAP, combine_confidence, confidence_parts
from retrieval.config import SearchConfig
from retrieval.domain import Article
from retrieval.newsindex import NewsIndex
from retrieval.search.fusion import SearchStats, background_of


def test_the_background_is_ranks_20_to_60_or_the_lower_half_of_a_small_collection() -> None:
    scores = np.linspace(0.9, 0.1, 100, dtype=np.float32)
    assert background_of(scores) == float(np.mean(scores[20:60]))
    assert background_of(scores[:10]) == float(np.mean(scores[5:10]))
    assert background_of(scores[:3]) is None
    assert SearchStats().contrast is None
    assert SearchStats(0.8, 0.5).contrast == 0.8 - 0.5


def test_a_passage_standing_out_raises_confidence_up_to_the_cap(sample_index: NewsIndex) -> None:
    question = "How big is the asteroid Vella?"
    query = sample_index.parse(question)
    stats = SearchStats()
    hits = sample_index.backend.retriever().search(
        query, sample_index.encoder.embed_one(question), 5, "weighted", stats
    )
    assert stats.top is not None and stats.background is not None and stats.top > stats.background
    config = SearchConfig()
    parts = confidence_parts(hits, 3, query, None)
    flat = combine_confidence(parts, 0.0, config)
    assert combine_confidence(parts, 0.1, config) == flat + config.contrast_weight * 0.1
    assert combine_confidence(parts, 5.0, config) == flat + config.contrast_weight * CONTRAST_CAP
    assert combine_confidence(parts, None, config) == flat + config.contrast_weight * CONTRAST_CAP


def test_names_the_passages_lack_lower_confidence(sample_index: NewsIndex) -> None:
    config = SearchConfig()
    asked = "How big is the asteroid Vella?"
    renamed = "How big is the asteroid Quorrin?"  # the same question about a body no article names
    scores = []
    for question in (asked, renamed):
        query = sample_index.parse(question)
        hits = sample_index.backend.retriever().search(query, sample_index.encoder.embed_one(question), 5, "weighted")
        scores.append(combine_confidence(confidence_parts(hits, 3, query, None), 0.0, config))
    assert scores[0] > scores[1] + 0.1


def test_a_collection_of_two_passages_still_answers(make_index: Callable[..., NewsIndex]) -> None:
    index = make_index()
    text = "The Kestrel probe travelled 4.1 billion kilometres to reach the asteroid Vella in March."
    index.ingest([Article(id="k", url="https://example.com/k", text=text)])
    stats = SearchStats()
    index.rank("How far did the Kestrel probe travel?", stats=stats)
    assert stats.contrast is None  # too few passages to tell a background
    answer = index.ask("How far did the Kestrel probe travel?")
    assert answer.answered and "4.1 billion kilometres" in answer.quotes[0].text
    assert not index.ask("What is the boiling point of tungsten?").answered


def test_a_sentence_holding_the_questions_terms_counts_more_than_terms_spread_out(
    make_index: Callable[..., NewsIndex],
) -> None:
    index = make_index()
    together = (
        "The harbour board met on Monday. The ferry Marisol carried 412 passengers to Tarn Island "
        "on its first crossing. Tickets sold out within a day."
    )
    spread = (
        "The ferry Marisol was built in a northern yard. Some 412 people signed a petition about "
        "fares last winter. The first crossing to Tarn Island was delayed, and passengers waited."
    )
    index.ingest(
        [
            Article(id="t", url="https://example.com/together", text=together),
            Article(id="s", url="https://example.com/spread", text=spread),
        ]
    )
    question = "How many passengers did the ferry Marisol carry to Tarn Island on its first crossing?"
    query = index.parse(question)
    hits = index.backend.retriever().search(query, index.encoder.embed_one(question), 5, "weighted")
    parts = {s.article.id: p for s, p in zip(hits, confidence_parts(hits, 3, query, None), strict=False)}
    assert set(parts) == {"t", "s"}
    # Both passages hold the question's names; only one holds them in one sentence.
    assert parts["t"][2] == parts["s"][2] == 1.0
    assert parts["t"][3] > parts["s"][3] + 0.2
    assert parts["t"][3] >= 0.6
