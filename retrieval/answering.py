"""Turn ranked hits into an answer: collapse duplicates, mark the best sentence, abstain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from retrieval.config import SearchConfig
from retrieval.encoder import Encoder
from retrieval.highlight import best_sentence, sentence_spans
from retrieval.models import Answer, Article, Quote
from retrieval.query import Query
from retrieval.search import Scored
from retrieval.urls import text_fragment_link

__all__ = ["NOT_FOUND", "build_answer", "collapse_duplicates"]

NOT_FOUND = "not found in the indexed articles"


@dataclass
class _Group:
    lead: Scored
    also: list[Article] = field(default_factory=list)


def collapse_duplicates(hits: Sequence[Scored], threshold: float) -> list[_Group]:
    """Keep the best of each set of near-identical passages; the others become "also in"."""
    groups: list[_Group] = []
    for s in hits:
        p = s.hit.passage
        twin = None
        for g in groups:
            q = g.lead.hit.passage
            same_article = q.article_id == p.article_id
            if same_article and p.start < q.end and q.start < p.end:
                twin = g  # overlapping chunks of one article
                break
            if float(g.lead.vector @ s.vector) >= threshold:
                twin = g
                break
        if twin is None:
            groups.append(_Group(s))
        elif twin.lead.article.id != s.article.id and all(a.id != s.article.id for a in twin.also):
            twin.also.append(s.article)
    return groups


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
) -> Answer:
    """Build the answer to ``question`` from its ranked hits."""
    if not hits:
        return Answer(question, (), False, NOT_FOUND)
    # Abstain when even the best passage is not about the question.
    confidence = max(float(s.hit.dense or 0.0) for s in hits[: max(k, 3)])
    if confidence < config.min_score:
        return Answer(question, (), False, NOT_FOUND)
    groups = collapse_duplicates(hits, config.dedupe_threshold)[offset : offset + k]
    if not groups:
        return Answer(question, (), False, "no more quotes for this question")
    spans = [sentence_spans(g.lead.hit.passage.text) for g in groups]
    sentences = [g.lead.hit.passage.text[a:b] for g, ss in zip(groups, spans, strict=True) for a, b in ss]
    vectors = encoder.embed(sentences)
    quotes = []
    pos = 0
    for g, ss in zip(groups, spans, strict=True):
        p = g.lead.hit.passage
        chosen = best_sentence(query.text, [p.text[a:b] for a, b in ss], vectors[pos : pos + len(ss)], query_vector, idf)
        pos += len(ss)
        a, b = ss[chosen]
        also = list(g.also)
        for extra in (copies or {}).get(g.lead.article.id, []):
            if all(x.id != extra.id for x in also):
                also.append(extra)
        quotes.append(
            Quote(
                text=p.text,
                start=p.start,
                end=p.end,
                highlight=(a, b),
                score=round(g.lead.hit.fused, 6),
                link=text_fragment_link(g.lead.article.url, p.text[a:b]),
                article=g.lead.article,
                passage_id=p.id,
                also_in=tuple(also),
            )
        )
    return Answer(question, tuple(quotes), True, None)
