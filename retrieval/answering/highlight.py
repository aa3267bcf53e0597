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
from collections.abc import Callable, Sequence

import numpy as np

from retrieval.search.tokens import term_coverage, tokenize

# Text -> terms, for many texts at once: ``tokenize``, or a cache of it (a question's texts are
# tokenised once however many signals read them).
Terms = Callable[[Sequence[str]], list[list[str]]]

__all__ = [
    "answer_match",
    "answer_type",
    "best_window",
    "has_answer_type",
    "sentence_coverage",
    "sentence_scores",
]

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
# "Which ..." asks for one of a named set; a bare "what ..." as often for a common noun ("what did
# the storm cause?" - "a power outage"), so only "what" followed by a kind of named thing counts.
_ENTITY_Q = re.compile(
    r"^\s*which\b|\b(what|which) (team|company|country|city|organi[sz]ation|group|party|name|person)\b", re.I
)
_NUMBER_TOKEN = re.compile(
    r"\d[\d,.]*|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
    r"fifty|hundred|thousand|million|billion|dozen|half|double|twice)\b",
    re.I,
)
_DATE = re.compile(
    r"\b(\d{4}|january|february|march|april|may|june|july|august|september|october|november|december|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|yesterday|today|tomorrow|last (week|month|year)|"
    r"next (week|month|year)|ago|spring|summer|autumn|winter)\b",
    re.I,
)
# Two capitalised words in a row, not at the start of the sentence: a name.
_NAME = re.compile(r"\b[A-Z][\w'’-]*(?:\s+(?:of\s+|de\s+|the\s+)?[A-Z][\w'’-]*)*")
_HOW_MANY = re.compile(r"\bhow many\s+((?:[\w'’-]+\s*){1,5})", re.I)
_AUXILIARY = frozenset(
    [
        "did",
        "do",
        "does",
        "were",
        "was",
        "are",
        "is",
        "have",
        "has",
        "had",
        "will",
        "would",
        "could",
        "can",
        "should",
        "might",
        "may",
    ]
)
_CURRENCY = re.compile(
    r"[$£€¥]|\b(euros?|dollars?|pounds?|yen|yuan|crowns?|kronor|kroner|francs?|rupees?|pesos?|rubles?|roubles?|cents?|pence)\b",
    re.I,
)
_PERCENT = re.compile(r"%|\bper ?cent\b|\bpercentage points?\b", re.I)
_LENGTHS = (
    r"kilomet(?:re|er)s?|km|miles?|met(?:re|er)s?|feet|foot|inch(?:es)?|hectares?|acres?|tonnes?|tons?|"
    r"kilo(?:gram)?s?|kg|grams?|litres?|liters?|square|cubic"
)
_DURATIONS = r"seconds?|minutes?|hours?|days?|weeks?|months?|years?|decades?|centur(?:y|ies)"
_NUMBER_KINDS = (
    (
        re.compile(
            r"\b(cost|price|pay|paid|spend|spent|budget|worth|fund|subsid|salary|fine|fee|money|revenue|profit)", re.I
        ),
        _CURRENCY,
    ),
    (
        re.compile(
            r"\b(rate|per ?cent|percentage|proportion|share|effective|turnout|inflation|growth|unemployment)\b", re.I
        ),
        _PERCENT,
    ),
    (
        re.compile(r"\bhow (far|big|large|wide|tall|high|deep|heavy)\b|\b(distance|area|size|weight)\b", re.I),
        re.compile(rf"\b({_LENGTHS})\b", re.I),
    ),
    (re.compile(r"\bhow long\b", re.I), re.compile(rf"\b({_LENGTHS}|{_DURATIONS})\b", re.I)),
    (re.compile(r"\bhow (hot|cold|warm)\b|\btemperature\b", re.I), re.compile(r"\d\s*(°|degrees?|C\b|F\b)", re.I)),
    (re.compile(r"\bhow fast\b|\bspeed\b", re.I), re.compile(r"km/h|mph|\bper (hour|second)\b|knots", re.I)),
)
_CALENDAR = re.compile(
    r"\b(\d{4}|january|february|march|april|may|june|july|august|september|october|november|december)\b", re.I
)
# Capitalised only because they start a sentence: not names.
_FUNCTION_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "it",
        "its",
        "he",
        "she",
        "his",
        "her",
        "they",
        "their",
        "them",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "however",
        "in",
        "on",
        "at",
        "by",
        "for",
        "from",
        "to",
        "of",
        "with",
        "but",
        "and",
        "or",
        "as",
        "after",
        "before",
        "when",
        "while",
        "despite",
        "although",
        "also",
        "we",
        "i",
        "you",
        "our",
        "mr",
        "mrs",
        "ms",
        "dr",
        "if",
        "so",
        "then",
        "yet",
        "since",
        "until",
        "during",
        "some",
        "many",
        "most",
        "all",
        "one",
    ]
)
_PLACE = re.compile(r"\b(in|at|near|from|outside|inside)\s+(the\s+)?[A-Z][a-z]+")


def answer_type(question: str) -> str | None:
    """Return what the question asks for: 'number', 'date', 'person', 'place', 'entity', or None."""
    if _NUMBER_Q.search(question):
        return "number"
    if _DATE_Q.search(question):
        return "date"
    if _PERSON_Q.search(question):
        return "person"
    if _PLACE_Q.search(question):
        return "place"
    if _ENTITY_Q.search(question):
        return "entity"
    return None


def _new(matches: list[str], question: str) -> bool:
    """Return True if some match is not already in the question: the answer is what is new."""
    q = question.casefold()
    return any(m.strip().casefold() not in q for m in matches if m.strip())


def _counted_noun(question: str, terms: Terms = tokenize) -> str | None:
    """Return the stem of the noun a "how many" question counts ("how many jobs does" -> "job")."""
    m = _HOW_MANY.search(question)
    if not m:
        return None
    words = m.group(1).split()
    # The noun is the word before the verb ("how many North Korean soldiers have died"), else
    # the first word ("how many women took part").
    verb = next((i for i, w in enumerate(words) if w.casefold() in _AUXILIARY), None)
    noun = words[verb - 1] if verb else words[0]
    stems = terms([noun])[0]
    return stems[0] if stems else None


def answer_match(sentence: str, kind: str | None, question: str = "", terms: Terms = tokenize) -> float:
    """Return how well ``sentence`` holds what the question asks for and does not already say.

    1.0 for the precise kind (an amount of money for "how much does it cost", a percentage for
    "what rate", a measured quantity for "how far", "<number> jobs" for "how many jobs", a
    calendar date for "when"), 0.5 for the broad kind (any new number or date), else 0.
    """
    if kind == "number":
        numbers = [m.group(0) for m in _NUMBER_TOKEN.finditer(sentence)]
        if not _new(numbers, question):
            return 0.0
        for question_pattern, sentence_pattern in _NUMBER_KINDS:
            if question_pattern.search(question):
                return 1.0 if sentence_pattern.search(sentence) else 0.5
        noun = _counted_noun(question, terms)
        if noun is not None:
            tokens = terms([sentence])[0]
            words = _WORD.findall(sentence.casefold())
            near = any(
                _NUMBER_TOKEN.fullmatch(w) and noun in terms([" ".join(words[i + 1 : i + 4])])[0]
                for i, w in enumerate(words)
            )
            return 1.0 if near else (0.5 if noun in tokens else 0.25)
        return 0.5
    if kind == "date":
        dates = [m.group(0) for m in _DATE.finditer(sentence)]
        if not _new(dates, question):
            return 0.0
        return 1.0 if _CALENDAR.search(sentence) else 0.5
    return 1.0 if has_answer_type(sentence, kind, question) else 0.0


def has_answer_type(sentence: str, kind: str | None, question: str = "") -> bool:
    """Return True when ``sentence`` holds something of the kind asked for that the question lacks."""
    if kind == "number":
        return _new([m.group(0) for m in _NUMBER_TOKEN.finditer(sentence)], question)
    if kind == "date":
        return _new([m.group(0) for m in _DATE.finditer(sentence)], question)
    if kind in ("person", "entity"):
        names = [m.group(0) for m in _NAME.finditer(sentence) if m.group(0).casefold() not in _FUNCTION_WORDS]
        return _new(names, question)
    if kind == "place":
        return _new([m.group(0).split(None, 1)[1] for m in _PLACE.finditer(sentence)], question)
    return False


def sentence_scores(
    question: str,
    sentences: Sequence[str],
    sentence_vectors: np.ndarray,
    question_vector: np.ndarray,
    idf: dict[str, float] | None = None,
    lexical_weight: float = 0.5,
    type_weight: float = 0.5,
    spread_power: float = 0.5,
    terms: Terms = tokenize,
) -> np.ndarray:
    """Return how well each sentence answers ``question`` (higher is better).

    In the lexical part a question term weighs its IDF divided by (the number of the passage's
    sentences holding it) ** ``spread_power``: a term found all over the passage is its topic
    ("Super Bowl 50" in a paragraph about it) and tells its sentences apart less than a term
    only one of them holds.
    """
    dense = sentence_vectors @ question_vector
    held = [set(found) for found in terms(list(sentences))]
    lexical = sentence_coverage(set(terms([question])[0]), held, idf, spread_power)
    kind = answer_type(question)
    typed = np.array([answer_match(s, kind, question, terms) for s in sentences], dtype=np.float32)
    # Very short fragments ("He said.") rarely carry an answer on their own.
    length = np.array([min(1.0, math.log1p(len(_WORD.findall(s))) / math.log1p(8)) for s in sentences])
    return np.asarray(
        (dense + lexical_weight * lexical + type_weight * typed) * (0.85 + 0.15 * length), dtype=np.float32
    )


def sentence_coverage(
    question_terms: set[str],
    sentence_terms: Sequence[set[str]],
    idf: dict[str, float] | None,
    spread_power: float = 0.5,
) -> np.ndarray:
    """Return the share of the question's terms each sentence holds, by IDF and by spread.

    A term weighs its IDF divided by (the number of sentences holding it) ** ``spread_power``.
    """
    weights = {
        t: (idf or {}).get(t, 1.0) / max(1, sum(t in h for h in sentence_terms)) ** spread_power for t in question_terms
    }
    return np.array([term_coverage(question_terms, terms, weights) for terms in sentence_terms], dtype=np.float32)


def best_window(scores: np.ndarray, pair_margin: float) -> tuple[int, int]:
    """Return ``(first, last)`` sentence indexes to mark: the best one, or it and a neighbour.

    A neighbour joins when it scores within ``pair_margin`` of the best: the answer then often
    spans both ("… said the minister. The cut takes effect in May.").
    """
    best = int(np.argmax(scores))
    if pair_margin <= 0 or len(scores) == 1:
        return best, best
    left = scores[best - 1] if best > 0 else -np.inf
    right = scores[best + 1] if best + 1 < len(scores) else -np.inf
    if max(left, right) < scores[best] - pair_margin:
        return best, best
    return (best - 1, best) if left > right else (best, best + 1)
