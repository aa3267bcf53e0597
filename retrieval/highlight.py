"""Pick the sentence of a passage that best answers a question.

Three signals, each cheap: the sentence's cosine similarity to the question (paraphrase), the
IDF-weighted share of the question's terms it contains (the names and numbers news questions
hinge on), and whether it holds the kind of thing the question asks for — a number for "how
many", a date for "when", a name for "who". The last one matters because the lead sentence of a
story is often the closest to any question about it without holding the answer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from retrieval.lexical import tokenize
from retrieval.sentences import split_sentences

__all__ = ["answer_type", "best_sentence", "has_answer_type", "sentence_spans"]

_WORD = re.compile(r"\w+")
_NUMBER_Q = re.compile(
    r"\b(how (many|much|far|long|big|large|old|tall|high|deep|often|fast|wide|heavy)|by how|"
    r"what (percentage|per ?cent|proportion|share|number|amount|rate|score|turnout|temperature|price|cost|"
    r"size|age|speed|distance|total|figure|margin)|how effective)\b",
    re.I,
)
_DATE_Q = re.compile(r"(^|\b)(when|what (year|date|day|month|time|decade|century)|since when|how long ago)\b", re.I)
_PERSON_Q = re.compile(r"(^|\b)(who|whom|whose)\b", re.I)
_PLACE_Q = re.compile(r"(^|\b)(where|in which (city|country|town|region|state))\b", re.I)
_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|"
    r"hundred|thousand|million|billion|dozen|half|double|twice)\b",
    re.I,
)
_DATE = re.compile(
    r"\b(\d{4}|january|february|march|april|may|june|july|august|september|october|november|december|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|yesterday|today|tomorrow|last (week|month|year)|"
    r"next (week|month|year)|ago|spring|summer|autumn|winter)\b",
    re.I,
)
# Two capitalised words in a row, not at the start of the sentence: a name.
_NAME = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z'’]+(?:\s+[A-Z][a-z'’]+)+")
_PLACE = re.compile(r"\b(in|at|near|from|outside|inside)\s+(the\s+)?[A-Z][a-z]+")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Return the sentence spans of a passage (offsets into ``text``)."""
    return split_sentences(text) or [(0, len(text))]


def answer_type(question: str) -> str | None:
    """Return what the question asks for: 'number', 'date', 'person', 'place', or None."""
    if _NUMBER_Q.search(question):
        return "number"
    if _DATE_Q.search(question):
        return "date"
    if _PERSON_Q.search(question):
        return "person"
    if _PLACE_Q.search(question):
        return "place"
    return None


def has_answer_type(sentence: str, kind: str | None) -> bool:
    """Return True when ``sentence`` holds something of the kind the question asks for."""
    if kind == "number":
        return bool(_NUMBER.search(sentence))
    if kind == "date":
        return bool(_DATE.search(sentence))
    if kind == "person":
        return bool(_NAME.search(sentence))
    if kind == "place":
        return bool(_PLACE.search(sentence))
    return False


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
    type_weight: float = 0.15,
) -> int:
    """Return the index of the sentence that best answers ``question``."""
    if len(sentences) == 1:
        return 0
    dense = sentence_vectors @ question_vector
    q_terms = set(tokenize([question])[0])
    sent_terms = tokenize(list(sentences))
    weights = idf or {}
    lexical = np.array([_overlap(q_terms, terms, weights) for terms in sent_terms], dtype=np.float32)
    kind = answer_type(question)
    typed = np.array([has_answer_type(s, kind) for s in sentences], dtype=np.float32)
    # Very short fragments ("He said.") rarely carry an answer on their own.
    length = np.array([min(1.0, math.log1p(len(_WORD.findall(s))) / math.log1p(8)) for s in sentences])
    score = (dense + lexical_weight * lexical + type_weight * typed) * (0.85 + 0.15 * length)
    return int(np.argmax(score))
