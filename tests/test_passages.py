"""Passages: whole sentences, exact offsets, overlap, and quotes that are verbatim substrings."""

from __future__ import annotations

import itertools
import string
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrieval.config import PassageConfig
from retrieval.ingest.loaders import make_article
from retrieval.ingest.sentences import split_sentences
from retrieval.ingest.splitter import split_text
from retrieval.newsindex import NewsIndex

words = st.text(alphabet=string.ascii_letters + "éüß0123456789'’-", min_size=1, max_size=12)
sentence = st.builds(
    lambda ws, end: " ".join(ws).capitalize() + end,
    st.lists(words, min_size=1, max_size=40),
    st.sampled_from([".", "!", "?", ".”", "", "…"]),
)
paragraph = st.builds(" ".join, st.lists(sentence, min_size=1, max_size=6))
article_text = st.builds(
    lambda ps, sep: sep.join(ps), st.lists(paragraph, min_size=1, max_size=8), st.sampled_from(["\n", "\n\n", "\n \n"])
)


@given(article_text, st.integers(20, 120), st.integers(0, 2))
@settings(max_examples=300, deadline=None)
def test_passages_are_exact_spans_of_whole_sentences(text: str, target: int, overlap: int) -> None:
    cfg = PassageConfig(target_words=target, max_words=target + 40, overlap_sentences=overlap)
    spans = split_text(text, cfg)
    sentences = split_sentences(text)
    assert spans, "every non-empty text gives at least one passage"
    for s in spans:
        assert 0 <= s.start < s.end <= len(text)
        assert text[s.start : s.end] == text[s.start : s.end].strip()
    # Every sentence short enough to fit lies whole inside some passage.
    for a, b in sentences:
        if len(text[a:b].split()) <= cfg.max_words:
            assert any(s.start <= a and b <= s.end for s in spans), text[a:b]
    # Passages advance through the text.
    assert [s.start for s in spans] == sorted({s.start for s in spans})


def test_a_sentence_longer_than_the_limit_is_cut_at_words() -> None:
    text = " ".join(["word"] * 500) + "."
    spans = split_text(text, PassageConfig(target_words=90, max_words=140, overlap_sentences=1))
    assert len(spans) >= 4
    assert all(len(text[s.start : s.end].split()) <= 140 for s in spans)


questions = st.text(alphabet=string.ascii_letters + " ?<>&*_[]()#", min_size=1, max_size=80).filter(
    lambda q: any(c.isalpha() for c in q)
)


@given(st.lists(article_text, min_size=1, max_size=2), st.lists(questions, min_size=1, max_size=3))
@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
def test_every_quote_is_a_verbatim_substring_of_its_article(
    make_index: Callable[..., NewsIndex], texts: list[str], qs: list[str]
) -> None:
    import uuid

    index = make_index(f"prop-{uuid.uuid4().hex}", min_score=-1.0)
    articles = [make_article(t, url=f"https://example.org/{i}") for i, t in enumerate(texts) if t.strip()]
    index.ingest(articles)
    stored = {a.id: a for a in articles}
    for q in qs:
        answer = index.ask(q, k=5)
        for quote in answer.quotes:
            article = stored[quote.article.id]
            assert article.text[quote.start : quote.end] == quote.text
            assert quote.text in article.text
            a, b = quote.highlight
            assert 0 <= a < b <= len(quote.text)
            assert quote.marked == quote.text[a:b] and quote.marked.strip() == quote.marked
        # No sentence is marked twice in one answer (neighbouring passages share one).
        marks = sorted((q.article.id, q.start + q.highlight[0], q.start + q.highlight[1]) for q in answer.quotes)
        for (a1, _, e1), (a2, s2, _) in itertools.pairwise(marks):
            assert a1 != a2 or e1 <= s2
    index.close()
