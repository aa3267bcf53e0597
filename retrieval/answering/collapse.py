"""Duplicate collapsing: the best of each set of near-identical passages, the others "also in"."""

from __future__ import annotations

from collections.abc import Sequence

from retrieval.answering.state import AnswerState, Group
from retrieval.search.fusion import Scored

__all__ = ["Collapse", "collapse_duplicates"]


def collapse_duplicates(hits: Sequence[Scored], threshold: float) -> list[Group]:
    """Keep the best of each set of near-identical passages; the others become "also in"."""
    groups: list[Group] = []
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
            groups.append(Group(s))
        elif twin.lead.article.id != s.article.id and all(a.id != s.article.id for a in twin.also):
            twin.also.append(s.article)
    return groups


class Collapse:
    """Collapse near-identical hits (``search.dedupe_threshold``) into groups."""

    name = "collapse"

    def run(self, state: AnswerState) -> None:
        """Fill ``state.groups`` from ``state.hits``."""
        state.groups = collapse_duplicates(state.hits, state.config.dedupe_threshold)
