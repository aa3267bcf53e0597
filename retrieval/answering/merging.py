"""One quote per stretch of an article: passages of one article that overlap or touch are joined.

Passages overlap by a sentence by design, so two quotes of neighbouring passages would show
that sentence twice. A quote that overlaps or adjoins an earlier (better ranked) quote of the
same article is joined to it instead: the joined quote spans both passages, in the better one's
place, with the better one's marked sentence, link and score. Joining can make a quote reach
another one of its article; those are joined too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import combinations

from retrieval.domain import Article, Quote

__all__ = ["merge_quotes", "touches"]


def touches(text: str, a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Return True when spans ``a`` and ``b`` of ``text`` overlap or only whitespace lies between them."""
    first, second = sorted((a, b))
    return second[0] <= first[1] or not text[first[1] : second[0]].strip()


@dataclass
class _Stretch:
    lead: Quote
    start: int
    end: int
    also: list[Article]


def merge_quotes(quotes: Sequence[Quote]) -> list[Quote]:
    """Return ``quotes`` (best first) with those of one article that overlap or adjoin joined."""
    stretches = [_Stretch(q, q.start, q.end, list(q.also_in)) for q in quotes]
    joined = True
    while joined:  # a joined stretch may reach a third quote of its article: join until none does
        joined = False
        for i, j in combinations(range(len(stretches)), 2):
            a, b = stretches[i], stretches[j]
            if a.lead.article.id != b.lead.article.id:
                continue
            if not touches(a.lead.article.text, (a.start, a.end), (b.start, b.end)):
                continue
            a.start, a.end = min(a.start, b.start), max(a.end, b.end)
            a.also += [x for x in b.also if all(x.id != y.id for y in a.also)]
            del stretches[j]
            joined = True
            break
    return [_quote_of(s) for s in stretches]


def _quote_of(stretch: _Stretch) -> Quote:
    lead = stretch.lead
    if (stretch.start, stretch.end) == (lead.start, lead.end) and tuple(stretch.also) == lead.also_in:
        return lead
    shift = lead.start - stretch.start
    return replace(
        lead,
        text=lead.article.text[stretch.start : stretch.end],
        start=stretch.start,
        end=stretch.end,
        highlight=(lead.highlight[0] + shift, lead.highlight[1] + shift),
        also_in=tuple(stretch.also),
    )
