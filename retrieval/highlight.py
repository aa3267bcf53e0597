"""Pick the sentence of a passage that best answers a question."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from retrieval.lexical import tokenize
from retrieval.sentences import split_sentences

__all__ = ["best_sentence", "sentence_spans"]

_WORD = re.compile(r"\w+")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Return the sentence spans of a passage (offsets into ``text``)."""
    return split_sentences(text) or [(0, len(text))]


def _overlap(query_terms: set[str], sentence_terms: list[str], idf: dict[str, float]) -> float:
    if not query_terms:
        return 0.0
    present = query_terms.intersection(sentence_terms)
    total = sum(idf.get(t, 1.0) for t in query_terms)
    return sum(idf.get(t, 1.0) for t in present) / total if total else 0.0


def best_sentence(
    question: str,
    sentences: Sequence[str],
    sentence_vectors: np.ndarray,
    question_vector: np.ndarray,
    idf: dict[str, float] | None = None,
    lexical_weight: float = 0.5,
) -> int:
    """Return the index of the sentence that best answers ``question``.

    The score adds the sentence's cosine similarity to the question and the IDF-weighted share of
    the question's terms it contains: the dense part finds paraphrases, the lexical part the
    names and numbers that questions about the news hinge on.
    """
    if len(sentences) == 1:
        return 0
    dense = sentence_vectors @ question_vector
    q_terms = set(tokenize([question])[0])
    sent_terms = tokenize(list(sentences))
    weights = idf or {}
    lexical = np.array([_overlap(q_terms, terms, weights) for terms in sent_terms], dtype=np.float32)
    # Very short fragments ("He said.") rarely carry an answer on their own.
    length = np.array([min(1.0, math.log1p(len(_WORD.findall(s))) / math.log1p(8)) for s in sentences])
    score = (dense + lexical_weight * lexical) * (0.85 + 0.15 * length)
    return int(np.argmax(score))
