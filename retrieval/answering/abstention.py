"""Abstention: say "not found" when nothing among the candidates answers the question.

The confidence is computed from the state: the best, over the first few hits, of the passage's
cosine similarity, plus ``coverage_weight`` times the share of the question's rarer terms it
contains, ``names_weight`` times the share of the question's names and numbers it contains (a
passage on a neighbouring story can be close in embedding space, but it rarely holds the
question's own names and terms) and ``sentence_terms_weight`` times the share of the question's
terms its best sentence holds (an answer sits in a sentence that says what the question asks; a
passage on the topic spreads the question's words over several sentences that each say
something else); plus ``contrast_weight`` times how far the best passage in the collection
stands out from the background (an off-topic question finds many loosely related passages and
none that stands out). Without a contrast (a collection of a few passages, a lexical-only
search) the best passage is taken to stand out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from retrieval.answering.highlight import Terms, sentence_coverage
from retrieval.answering.names import name_share, question_names
from retrieval.answering.state import NOT_FOUND, AnswerState, no_match_reason
from retrieval.config import SearchConfig
from retrieval.ingest.sentences import sentence_spans
from retrieval.models.sentvecs import SentenceVectors
from retrieval.query import Query
from retrieval.search.fusion import Scored
from retrieval.search.tokens import term_coverage, tokenize

__all__ = ["CONTRAST_CAP", "Abstention", "combine_confidence", "confidence_parts", "state_confidence"]

# Contrast counts up to this much (the 99th percentile of off-topic questions on the evaluation
# sets, the median of answerable ones): in a small collection of unrelated stories anything near
# one story stands out from the rest, which says it is on that story's topic, not that it answers.
CONTRAST_CAP = 0.25

Parts = tuple[float, float, float, float]


def confidence_parts(
    hits: Sequence[Scored],
    k: int,
    query: Query | None,
    idf: dict[str, float] | None,
    stored: Callable[[int], SentenceVectors | None] | None = None,
    terms: Terms = tokenize,
) -> list[Parts]:
    """Return, for each of the first ``max(k, 3)`` hits, its cosine, term coverage, share of names
    and the term coverage of its best sentence (as the marking weighs it). Sentence spans are
    taken from ``stored`` where it has them (splitting sentences costs more than the rest)."""
    question = set(terms([query.text])[0]) if query is not None else set()
    names = question_names(query.text, terms) if query is not None else []
    top = hits[: max(k, 3)]
    sentences = [[s.hit.passage.text[a:b] for a, b in _spans(s, stored)] for s in top]
    tokens = iter(terms([sentence for group in sentences for sentence in group]))
    parts = []
    for s, group in zip(top, sentences, strict=True):
        by_sentence = [set(next(tokens)) for _ in group]
        held = set().union(*by_sentence)
        cover = term_coverage(question, held, idf) if question else 0.0
        best = float(sentence_coverage(question, by_sentence, idf).max()) if question and by_sentence else 0.0
        parts.append((float(s.hit.dense or 0.0), cover, name_share(names, held), best))
    return parts


def _spans(s: Scored, stored: Callable[[int], SentenceVectors | None] | None) -> Sequence[tuple[int, int]]:
    known = stored(s.hit.passage.id) if stored is not None else None
    return known.spans if known is not None else sentence_spans(s.hit.passage.text)


def combine_confidence(parts: Sequence[Sequence[float]], contrast: float | None, config: SearchConfig) -> float:
    """Return the confidence made of ``confidence_parts`` and the contrast, weighed by ``config``."""
    best = max(
        (
            d + config.coverage_weight * c + config.names_weight * n + config.sentence_terms_weight * t
            for d, c, n, t in parts
        ),
        default=0.0,
    )
    return best + config.contrast_weight * min(CONTRAST_CAP if contrast is None else contrast, CONTRAST_CAP)


def state_parts(state: AnswerState) -> list[Parts]:
    """Return the confidence parts of the state's hits (what ``eval --details`` records)."""
    return confidence_parts(state.hits, state.k, state.query, state.idf, state.stored, state.terms)


def state_confidence(state: AnswerState) -> float:
    """Return how sure we are that the state's hits answer the question (see the module)."""
    return combine_confidence(state_parts(state), state.stats.contrast, state.config)


class Abstention:
    """End the answer with "not found" when the confidence is below ``search.min_score`` (or with
    "no article matches" when the question's filters leave no article to search).

    ``confidence`` computes the confidence from the state; a stage that judges answerability
    itself (a reader) comes with its own.
    """

    name = "abstention"

    def __init__(self, confidence: Callable[[AnswerState], float] = state_confidence) -> None:
        self.confidence = confidence

    def run(self, state: AnswerState) -> None:
        """Set ``state.confidence``; stop with "not found" below the threshold."""
        if not state.hits:
            # A filter that leaves no article at all: say so, rather than that the articles do not answer.
            filtered_out = state.query.filtered and not state.sources.any_article(state.query)
            state.stop(no_match_reason(state.query) if filtered_out else NOT_FOUND)
            return
        state.confidence = self.confidence(state)
        if state.confidence < state.config.min_score:
            state.stop(NOT_FOUND)
