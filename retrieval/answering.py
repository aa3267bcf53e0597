"""Turn ranked hits into an answer: collapse duplicates, rerank by best sentence, mark it, abstain.

The order of work keeps answering cheap: hits are collapsed first, then only the first
``rerank_depth`` groups have their sentences encoded; those vectors serve twice, to rerank the
groups by their best sentence (an answer usually sits in one sentence, and a passage that merely
shares the topic scores lower there) and to mark that sentence in the quote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from retrieval.config import SearchConfig
from retrieval.encoder import Encoder
from retrieval.highlight import best_window, sentence_coverage, sentence_scores, sentence_spans
from retrieval.lexical import term_coverage, tokenize
from retrieval.merging import merge_quotes
from retrieval.models import Answer, Article, Passage, Quote
from retrieval.names import name_share, question_names
from retrieval.query import Query
from retrieval.search import Scored
from retrieval.sentvecs import SentenceVectors
from retrieval.urls import text_fragment_link

__all__ = [
    "NOT_FOUND",
    "NO_MATCH",
    "Ranked",
    "build_answer",
    "collapse_duplicates",
    "combine_confidence",
    "confidence",
    "confidence_parts",
    "no_match_reason",
    "rank_groups",
]

NOT_FOUND = "not found in the indexed articles"
NO_MORE = "no more quotes for this question"
# The reason when the question's filters (source:, since:, until:) leave no article at all.
NO_MATCH = "no article matches"


def no_match_reason(query: Query) -> str:
    """Return why a filtered question has no answer: "no article matches source:norland"."""
    return f"{NO_MATCH} {query.filters_text()}"


@dataclass
class _Group:
    lead: Scored
    also: list[Article] = field(default_factory=list)


@dataclass
class Ranked:
    """A collapsed group of hits with its sentences scored (once they are needed)."""

    group: _Group
    spans: list[tuple[int, int]] = field(default_factory=list)  # filled with the scores
    scores: np.ndarray | None = None
    score: float = 0.0

    @property
    def scored(self) -> Scored:
        return self.group.lead


def collapse_duplicates(hits: Sequence[Scored], threshold: float) -> list[_Group]:
    """Keep the best of each set of near-identical passages; the others become "also in"."""
    groups: list[_Group] = []
    for s in hits:
        p = s.hit.passage
        twin = None
        for g in groups:
            q = g.lead.hit.passage
            shared = min(p.end, q.end) - max(p.start, q.start)
            if q.article_id == p.article_id and shared > 0.5 * min(p.end - p.start, q.end - q.start):
                # Mostly the same span of one article. Neighbouring passages share one sentence
                # of overlap by design and stay separate quotes.
                twin = g
                break
            if float(g.lead.vector @ s.vector) >= threshold:
                twin = g
                break
        if twin is None:
            groups.append(_Group(s))
        elif twin.lead.article.id != s.article.id and all(a.id != s.article.id for a in twin.also):
            twin.also.append(s.article)
    return groups


# Contrast counts up to this much (the 99th percentile of off-topic questions on the evaluation
# sets, the median of answerable ones): in a small collection of unrelated stories anything near
# one story stands out from the rest, which says it is on that story's topic, not that it answers.
CONTRAST_CAP = 0.25


def confidence_parts(
    hits: Sequence[Scored],
    k: int,
    query: Query | None,
    idf: dict[str, float] | None,
    stored: Mapping[int, SentenceVectors] | None = None,
) -> list[tuple[float, float, float, float]]:
    """Return, for each of the first few hits, its cosine, term coverage, share of names and the
    term coverage of its best sentence (as the marking weighs it). Sentence spans are taken from
    ``stored`` where it has them (splitting sentences costs more than the rest)."""
    terms = set(tokenize([query.text])[0]) if query is not None else set()
    names = question_names(query.text) if query is not None else []
    top = hits[: max(k, 3)]
    sentences = [[s.hit.passage.text[a:b] for a, b in _spans(s.hit.passage, stored)] for s in top]
    tokens = iter(tokenize([sentence for group in sentences for sentence in group]))  # one call: cheaper
    parts = []
    for s, group in zip(top, sentences, strict=True):
        by_sentence = [set(next(tokens)) for _ in group]
        held = set().union(*by_sentence)
        cover = term_coverage(terms, held, idf) if terms else 0.0
        best = float(sentence_coverage(terms, by_sentence, idf).max()) if terms and by_sentence else 0.0
        parts.append((float(s.hit.dense or 0.0), cover, name_share(names, held), best))
    return parts


def _spans(passage: Passage, stored: Mapping[int, SentenceVectors] | None) -> Sequence[tuple[int, int]]:
    known = (stored or {}).get(passage.id)
    return known.spans if known is not None else sentence_spans(passage.text)


def confidence(
    hits: Sequence[Scored],
    k: int,
    query: Query | None,
    idf: dict[str, float] | None,
    config: SearchConfig,
    contrast: float | None = None,
    stored: Mapping[int, SentenceVectors] | None = None,
) -> float:
    """Return how sure we are that the top hits answer the question.

    The best, over the first few hits, of the passage's cosine similarity, plus ``coverage_weight``
    times the share of the question's rarer terms it contains, ``names_weight`` times the share
    of the question's names and numbers it contains (a passage on a neighbouring story can be
    close in embedding space, but it rarely holds the question's own names and terms) and
    ``sentence_terms_weight`` times the share of the question's terms its best sentence holds (an
    answer sits in a sentence that says what the question asks; a passage on the topic spreads
    the question's words over several sentences that each say something else); plus
    ``contrast_weight`` times how far the best passage in the collection stands out from the
    background (an off-topic question finds many loosely related passages and none that stands
    out). Without a contrast (a collection of a few passages, a lexical-only search) the best
    passage is taken to stand out.
    """
    return combine_confidence(confidence_parts(hits, k, query, idf, stored), contrast, config)


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


def _score_sentences(
    items: Sequence[Ranked],
    query: Query,
    encoder: Encoder,
    query_vector: np.ndarray,
    idf: dict[str, float] | None,
    stored: dict[int, SentenceVectors] | None = None,
) -> None:
    todo = [r for r in items if r.scores is None]
    if not todo:
        return
    vectors: dict[int, np.ndarray] = {}
    alone: list[Ranked] = []
    for r in todo:
        known = (stored or {}).get(r.scored.hit.passage.id)
        if known is not None:
            r.spans, vectors[id(r)] = list(known.spans), known.vectors
        else:
            # Stored before sentence vectors were kept (schema 1): encode the sentences now.
            r.spans = sentence_spans(r.scored.hit.passage.text)
            alone.append(r)
    if alone:
        texts = [r.scored.hit.passage.text[a:b] for r in alone for a, b in r.spans]
        encoded = encoder.embed(texts)
        pos = 0
        for r in alone:
            vectors[id(r)] = encoded[pos : pos + len(r.spans)]
            pos += len(r.spans)
    for r in todo:
        sentences = [r.scored.hit.passage.text[a:b] for a, b in r.spans]
        r.scores = sentence_scores(query.text, sentences, vectors[id(r)], query_vector, idf)


def rank_groups(
    query: Query,
    hits: Sequence[Scored],
    encoder: Encoder,
    query_vector: np.ndarray,
    config: SearchConfig,
    idf: dict[str, float] | None = None,
    stored: dict[int, SentenceVectors] | None = None,
) -> list[Ranked]:
    """Collapse duplicates and rerank the first ``rerank_depth`` groups by their best sentence."""
    groups = [Ranked(g) for g in collapse_duplicates(hits, config.dedupe_threshold)]
    depth = min(config.rerank_depth, len(groups))
    head = groups[:depth]
    if head and config.sentence_weight > 0:
        _score_sentences(head, query, encoder, query_vector, idf, stored)
        for r in head:
            assert r.scores is not None
            r.score = r.scored.hit.fused + config.sentence_weight * float(r.scores.max())
        head.sort(key=lambda r: -r.score)
    return head + groups[depth:]


def build_answer(
    question: str,
    query: Query,
    hits: Sequence[Scored],
    encoder: Encoder,
    query_vector: np.ndarray,
    config: SearchConfig,
    k: int,
    offset: int = 0,
    copies: dict[str, list[Article]] | None = None,
    idf: dict[str, float] | None = None,
    stored: dict[int, SentenceVectors] | None = None,
    contrast: float | None = None,
) -> Answer:
    """Build the answer to ``question`` from its hits: quotes best first, or "not found".

    ``contrast`` is how far the question's best passage stands out (SearchStats.contrast).
    """
    if not hits or confidence(hits, k, query, idf, config, contrast, stored) < config.min_score:
        return Answer(question, (), False, NOT_FOUND)
    ranked = rank_groups(query, hits, encoder, query_vector, config, idf, stored)
    lead = ranked[0].scored.hit.dense or 0.0 if ranked else 0.0
    # Later quotes must be about the question too, not merely the next-best passage.
    candidates = [
        r for i, r in enumerate(ranked) if i == 0 or (r.scored.hit.dense or 0.0) >= min(config.related_cosine, lead)
    ]
    wanted = offset + k
    _score_sentences(candidates[: wanted + 2], query, encoder, query_vector, idf, stored)
    quotes: list[Quote] = []
    marks: list[tuple[str, int, int]] = []  # article id and absolute offsets of each marked span
    for r in candidates:
        # Quotes of one article that overlap or adjoin become one (retrieval/merging.py), so
        # count the quotes as they will be shown.
        if len(quotes) >= wanted and len(merge_quotes(quotes)) >= wanted:
            break
        _score_sentences([r], query, encoder, query_vector, idf, stored)
        assert r.scores is not None
        p = r.scored.hit.passage
        first, last = best_window(r.scores, config.pair_margin)
        a, b = r.spans[first][0], r.spans[last][1]
        article_id = r.scored.article.id
        # Neighbouring passages share a sentence; the same sentence is never marked twice.
        if any(aid == article_id and p.start + a < end and start < p.start + b for aid, start, end in marks):
            continue
        marks.append((article_id, p.start + a, p.start + b))
        also = list(r.group.also)
        for extra in (copies or {}).get(article_id, []):
            if all(x.id != extra.id for x in also):
                also.append(extra)
        quotes.append(
            Quote(
                text=p.text,
                start=p.start,
                end=p.end,
                highlight=(a, b),
                score=round(r.score or r.scored.hit.fused, 6),
                link=text_fragment_link(r.scored.article.url, p.text[a:b]),
                article=r.scored.article,
                passage_id=p.id,
                also_in=tuple(also),
            )
        )
    quotes = merge_quotes(quotes)[offset:]
    if not quotes:
        return Answer(question, (), False, NO_MORE)
    return Answer(question, tuple(quotes), True, None)
