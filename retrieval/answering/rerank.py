"""Reranking by the best sentence, and the sentence scores it shares with the marking.

An answer usually sits in one sentence, and a passage that merely shares the topic scores lower
there. Only the first ``rerank_depth`` groups have their sentences scored; the scores serve
twice, to rerank the groups and to mark the best sentence in the quote.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retrieval.answering.highlight import sentence_scores
from retrieval.answering.state import AnswerState, Group
from retrieval.ingest.sentences import sentence_spans

__all__ = ["Rerank", "score_sentences"]


def score_sentences(state: AnswerState, groups: Sequence[Group]) -> None:
    """Give the groups that have none their sentences and sentence scores (highlight's signals).

    Sentence vectors come from the store; passages stored before they were kept (schema 1) have
    their sentences encoded now, in one batch.
    """
    todo = [g for g in groups if g.sentence_scores is None]
    if not todo:
        return
    assert state.query_vector is not None
    vectors: dict[int, np.ndarray] = {}
    alone: list[Group] = []
    for g in todo:
        known = state.stored(g.lead.hit.passage.id)
        if known is not None:
            g.spans, vectors[id(g)] = list(known.spans), known.vectors
        else:
            g.spans = sentence_spans(g.lead.hit.passage.text)
            alone.append(g)
    if alone:
        encoded = state.encoder.embed([s for g in alone for s in g.sentences()])
        pos = 0
        for g in alone:
            assert g.spans is not None
            vectors[id(g)] = encoded[pos : pos + len(g.spans)]
            pos += len(g.spans)
    for g in todo:
        g.sentence_scores = sentence_scores(
            state.query.text, g.sentences(), vectors[id(g)], state.query_vector, state.idf, terms=state.terms
        )


class Rerank:
    """Reorder the first ``search.rerank_depth`` groups by fused + ``sentence_weight`` × best sentence."""

    name = "rerank"

    def run(self, state: AnswerState) -> None:
        """Score the head's sentences and sort it by ``group.score``."""
        config = state.config
        depth = min(config.rerank_depth, len(state.groups))
        head = state.groups[:depth]
        if not head or config.sentence_weight <= 0:
            return
        score_sentences(state, head)
        for g in head:
            assert g.sentence_scores is not None
            g.score = g.lead.hit.fused + config.sentence_weight * float(g.sentence_scores.max())
        head.sort(key=lambda g: -g.score)
        state.groups = head + state.groups[depth:]
