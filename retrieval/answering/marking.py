"""Marking the answering sentence in each shown group, and turning the groups into quotes."""

from __future__ import annotations

from retrieval.answering.highlight import best_window
from retrieval.answering.merging import merge_quotes
from retrieval.answering.rerank import score_sentences
from retrieval.answering.state import NO_MORE, AnswerState, Group
from retrieval.domain import Article, Quote
from retrieval.urls import text_fragment_link

__all__ = ["Marking", "Quotes"]


class Marking:
    """Choose the groups to show and mark the best sentence (or pair) of each.

    Later quotes must be about the question too, not merely the next-best passage (their cosine
    at least ``related_cosine``, or the first one's if lower). Sentences are scored where no
    earlier stage scored them; a sentence already marked in a neighbouring passage is not marked
    twice (that group is skipped).
    """

    name = "marking"

    def run(self, state: AnswerState) -> None:
        """Fill ``state.marked`` with up to ``offset + k`` groups, each with its ``mark``."""
        config = state.config
        groups = state.groups
        lead = (groups[0].lead.hit.dense or 0.0) if groups else 0.0
        candidates = [
            g for i, g in enumerate(groups) if i == 0 or (g.lead.hit.dense or 0.0) >= min(config.related_cosine, lead)
        ]
        wanted = state.wanted
        score_sentences(state, candidates[: wanted + 2])
        marks: list[tuple[str, int, int]] = []  # article id and absolute offsets of each marked span
        for g in candidates:
            # Quotes of one article that overlap or adjoin become one (merging.py), so count the
            # quotes as they will be shown.
            if len(state.marked) >= wanted and len(merge_quotes([_quote(m, []) for m in state.marked])) >= wanted:
                break
            score_sentences(state, [g])
            assert g.sentence_scores is not None and g.spans is not None
            p = g.lead.hit.passage
            first, last = best_window(g.sentence_scores, config.pair_margin)
            a, b = g.spans[first][0], g.spans[last][1]
            article_id = g.lead.article.id
            # Neighbouring passages share a sentence; the same sentence is never marked twice.
            if any(aid == article_id and p.start + a < end and start < p.start + b for aid, start, end in marks):
                continue
            marks.append((article_id, p.start + a, p.start + b))
            g.mark = (a, b)
            state.marked.append(g)


class Quotes:
    """Turn the marked groups into quotes (text, mark, link, copies elsewhere), join the quotes of
    one article that overlap or adjoin, and keep those after ``offset``."""

    name = "quotes"

    def run(self, state: AnswerState) -> None:
        """Fill ``state.quotes`` (or end with "no more quotes")."""
        copies = state.sources.copies_of(g.lead.article.id for g in state.marked)
        quotes = merge_quotes([_quote(g, copies.get(g.lead.article.id, [])) for g in state.marked])
        state.quotes = quotes[state.offset :]
        if not state.quotes:
            state.stop(NO_MORE)


def _quote(g: Group, copies: list[Article]) -> Quote:
    assert g.mark is not None
    a, b = g.mark
    p = g.lead.hit.passage
    also = list(g.also)
    for extra in copies:
        if all(x.id != extra.id for x in also):
            also.append(extra)
    return Quote(
        text=p.text,
        start=p.start,
        end=p.end,
        highlight=(a, b),
        score=round(g.score or g.lead.hit.fused, 6),
        link=text_fragment_link(g.lead.article.url, p.text[a:b]),
        article=g.lead.article,
        passage_id=p.id,
        also_in=tuple(also),
    )
