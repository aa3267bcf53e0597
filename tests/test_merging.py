"""Quotes of one article never repeat its text: overlapping or adjoining passages become one quote."""

from __future__ import annotations

import json
from itertools import combinations

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.telegram.render import render_answer
from bot.terminal import format_answer
from retrieval.answering.merging import merge_quotes, touches
from retrieval.domain import Answer, Article, Quote
from retrieval.newsindex import NewsIndex

from .conftest import SAMPLE

TEXT = (
    "The tide mill at Orrin Quay turned again on Sunday. "  # 0-51
    "Volunteers had rebuilt its wheel over two winters. "  # 52-102
    "The first flour was sold to a bakery in the village. "  # 103-155
    "A second mill upstream is next.\n\n"  # 156-187, then a blank line
    "Its owners have asked for a grant."  # 189-223
)
ARTICLE = Article(id="mill", url="https://example.org/mill", text=TEXT, title="Mill turns again")
OTHER = Article(id="other", url="https://example.org/other", text=TEXT, title="Copy elsewhere")


def _quote(article: Article, start: int, end: int, mark: tuple[int, int], pid: int) -> Quote:
    text = article.text[start:end]
    a, b = mark[0] - start, mark[1] - start
    return Quote(text, start, end, (a, b), 1.0 / pid, f"{article.url}#{pid}", article, pid)


def _shown(quote: Quote) -> None:
    assert quote.text == quote.article.text[quote.start : quote.end]
    assert 0 <= quote.highlight[0] < quote.highlight[1] <= len(quote.text)


def test_overlapping_quotes_of_one_article_become_one_with_the_better_ones_mark() -> None:
    best = _quote(ARTICLE, 52, 155, (103, 155), 1)  # its second sentence is the next one's first
    worse = _quote(ARTICLE, 0, 102, (0, 51), 2)
    [joined] = merge_quotes([best, worse])
    _shown(joined)
    assert (joined.start, joined.end) == (0, 155)
    assert joined.marked == TEXT[103:155] and joined.link == best.link and joined.passage_id == 1


def test_adjoining_quotes_join_across_whitespace_and_chains_join_whole() -> None:
    quotes = [
        _quote(ARTICLE, 0, 51, (0, 51), 1),
        _quote(ARTICLE, 156, 223, (189, 223), 2),
        _quote(ARTICLE, 52, 155, (52, 102), 3),  # fills the gap: all three are one stretch
    ]
    [joined] = merge_quotes(quotes)
    _shown(joined)
    assert (joined.start, joined.end) == (0, 223) and joined.marked == TEXT[0:51]


def test_quotes_apart_or_of_other_articles_stay_apart() -> None:
    quotes = [
        _quote(ARTICLE, 0, 51, (0, 51), 1),
        _quote(OTHER, 52, 102, (52, 102), 2),
        _quote(ARTICLE, 103, 155, (103, 155), 3),  # "Volunteers ..." lies between: not adjoining
    ]
    assert merge_quotes(quotes) == quotes


def test_touches_means_overlap_or_only_whitespace_between() -> None:
    assert touches(TEXT, (0, 60), (52, 102))
    assert touches(TEXT, (103, 187), (189, 223))
    assert not touches(TEXT, (0, 51), (103, 155))


def _no_repeated_text(answer: Answer) -> None:
    for q in answer.quotes:
        _shown(q)
    for a, b in combinations(answer.quotes, 2):
        if a.article.id == b.article.id:
            assert not touches(a.article.text, (a.start, a.end), (b.start, b.end)), (a.start, a.end, b.start, b.end)


CUP = "Who won the cup final?"


def test_the_cup_final_answer_repeats_no_sentence(sample_index: NewsIndex) -> None:
    answer = sample_index.ask(CUP)
    assert answer.answered
    _no_repeated_text(answer)
    sentences = [s.strip() for q in answer.quotes for s in q.text.replace("\n", " ").split(". ") if s.strip()]
    assert len(sentences) == len(set(sentences))
    # Every front-end shows the answer as built: each sentence once.
    text = format_answer(answer)
    assert text.count("Haddad, 34") == 1 and text.count("Extra time produced") == 1
    telegram = "".join(render_answer(answer, quote_chars=4000).messages)
    assert telegram.count("Haddad, 34") == 1


@pytest.mark.parametrize(
    "question",
    [CUP, "What did officials say about the wildfire?", "What happened to the stolen paintings?", "Aldermoor vote"],
)
def test_no_answer_shows_one_articles_text_twice(sample_index: NewsIndex, question: str) -> None:
    for k in (3, 5):
        _no_repeated_text(sample_index.ask(question, k=k))


def test_more_after_merging_repeats_nothing(sample_index: NewsIndex) -> None:
    first = sample_index.ask("What did officials say about the wildfire?", k=2)
    more = sample_index.ask("What did officials say about the wildfire?", k=2, offset=2)
    shown = [(q.article.id, q.start, q.end) for q in first.quotes]
    for q in more.quotes:
        assert all(not (aid == q.article.id and s < q.end and q.start < e) for aid, s, e in shown)


def test_json_quotes_are_merged_too(tmp_path_factory: pytest.TempPathFactory) -> None:
    data = str(tmp_path_factory.mktemp("merge") / "data")
    assert CliRunner().invoke(cli, ["--data-dir", data, "ingest", str(SAMPLE)]).exit_code == 0
    out = CliRunner().invoke(cli, ["--data-dir", data, "ask", "--json", CUP]).stdout
    quotes = json.loads(out)["quotes"]
    spans = [(q["article"]["id"], q["start"], q["end"]) for q in quotes]
    for (a1, s1, e1), (a2, s2, e2) in combinations(spans, 2):
        assert a1 != a2 or not (s2 <= e1 and s1 <= e2), spans
