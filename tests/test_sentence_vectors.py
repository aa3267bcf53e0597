"""Sentence vectors pooled at ingest: storage round trip, agreement between backends, fallbacks."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrieval.config import Config
from retrieval.ingest.loaders import make_article
from retrieval.ingest.sentences import sentence_spans
from retrieval.models.encoder import Encoder, embed_spans_alone
from retrieval.models.loading import load_encoder
from retrieval.models.sentvecs import SentenceVectors, token_ranges
from retrieval.newsindex import NewsIndex
from retrieval.storage.local.schema import SCHEMA_VERSION
from tests.counting_encoder import CountingEncoder

BRIDGE = make_article(
    "The council voted on Tuesday to build a footbridge over the river. "
    "The bridge will have 212 steps and a lift for wheelchairs. "
    "Work starts in the spring and should take two years. "
    "Some residents said the money should go to the bus service instead.",
    url="https://example.org/bridge",
    title="River crossing approved",
    source="Example Gazette",
)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)).map(lambda t: (min(t), max(t))),
        min_size=1,
        max_size=12,
    ),
    st.integers(1, 16),
    st.integers(0, 2**32 - 1),
)
def test_packing_keeps_spans_and_vectors_close(spans: list[tuple[int, int]], dim: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(len(spans), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    back = SentenceVectors.unpack(SentenceVectors(tuple(spans), vectors).pack())
    assert back.spans == tuple(spans)
    # int8 with a scale per vector: each component within half a step of the original.
    steps = np.abs(vectors).max(axis=1, keepdims=True) / 127
    assert np.all(np.abs(back.vectors - vectors) <= steps / 2 + 1e-7)


def test_tokens_belong_to_the_span_they_start_in() -> None:
    offsets = [(0, 0), (0, 3), (4, 9), (9, 10), (11, 14), (15, 20), (0, 0)]
    assert [r.tolist() for r in token_ranges(offsets, [(0, 10), (11, 20), (30, 40)])] == [[1, 2, 3], [4, 5], []]


def test_passage_vectors_are_unchanged_and_sentences_pooled_alike_by_both_backends(encoder: Encoder) -> None:
    from retrieval.models.encoder import SentenceTransformerEncoder

    # fp32 ONNX, so that torch must agree with it to rounding (the default encodes passages in int8).
    encoder = load_encoder(
        dataclasses.replace(Config().model, quantize="none", cache_dir=os.environ["NEWSQA_MODEL_CACHE_DIR"])
    )
    texts = [f"{BRIDGE.title}\n{BRIDGE.text}", "One short line. Another one!"]
    head = len(BRIDGE.title or "") + 1
    spans = [[(a + head, b + head) for a, b in sentence_spans(BRIDGE.text)]]
    spans.append(sentence_spans(texts[1]))
    vectors, pooled = encoder.embed_passages(texts, spans)
    np.testing.assert_allclose(vectors, encoder.embed(texts), atol=1e-6)
    assert [p.shape for p in pooled] == [(4, encoder.dim), (2, encoder.dim)]
    np.testing.assert_allclose(np.linalg.norm(pooled[0], axis=1), 1.0, atol=1e-5)
    torch_vectors, torch_pooled = SentenceTransformerEncoder().embed_passages(texts, spans)
    np.testing.assert_allclose(torch_vectors, vectors, atol=1e-5)
    for ours, theirs in zip(pooled, torch_pooled, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    # Pooled in context, a sentence differs from the same sentence encoded alone, but stays close.
    alone = embed_spans_alone(encoder, texts, spans)
    cosines = (pooled[0] * alone[0]).sum(axis=1)
    assert np.all(cosines > 0.5) and np.all(cosines < 0.9999)


def test_sentences_cut_off_by_truncation_are_encoded_alone(encoder: Encoder) -> None:
    filler = "The committee met again to discuss the budget for the coming year. " * 40
    text = filler + "Lions escaped from the zoo."
    spans = [(0, len(filler) - 1), (len(filler), len(text))]
    _, pooled = encoder.embed_passages([text], [spans])
    np.testing.assert_allclose(pooled[0][1], encoder.embed(["Lions escaped from the zoo."])[0], atol=1e-5)


def test_answers_use_stored_sentence_vectors_and_encode_only_the_question(make_index: Callable[..., NewsIndex]) -> None:
    index = make_index()
    counting = CountingEncoder(index.encoder)
    index._encoder = counting
    index.ingest([BRIDGE])
    counting.embedded.clear()
    answer = index.ask("How many steps will the bridge have?")
    assert answer.answered
    quote = answer.quotes[0]
    assert "212 steps" in quote.text[quote.highlight[0] : quote.highlight[1]]
    assert counting.embedded == ["How many steps will the bridge have?"]


@pytest.mark.local_only
def test_a_schema_1_store_is_upgraded_and_still_answers(make_config: Callable[..., Config], encoder: Encoder) -> None:
    config = make_config()
    with NewsIndex.open(config, encoder=encoder, create=True) as index:
        index.ingest([BRIDGE])
    db = Path(config.data_dir) / "newsqa.sqlite3"
    # Make it look like a store written before sentence vectors were kept.
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE passages DROP COLUMN sentences")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    counting = CountingEncoder(encoder)
    with NewsIndex.open(config, encoder=counting) as index:
        answer = index.ask("How many steps will the bridge have?")
        assert answer.answered
        quote = answer.quotes[0]
        assert "212 steps" in quote.text[quote.highlight[0] : quote.highlight[1]]
        # No stored sentence vectors: the sentences were encoded to answer.
        assert len(counting.embedded) > 1
        assert index.backend.get_meta("schema_version") == str(SCHEMA_VERSION)
    con = sqlite3.connect(db)
    assert "sentences" in [r[1] for r in con.execute("PRAGMA table_info(passages)")]
    con.close()
