"""The bonus for recent articles: counted from the newest candidate, neutral where dates are missing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import numpy as np

from retrieval.answering.candidates import prefer_recent
from retrieval.domain import Article, Hit, Passage
from retrieval.newsindex import NewsIndex
from retrieval.query import Query, parse_question
from retrieval.search.fusion import Scored

NEWEST = datetime(2022, 7, 1, tzinfo=timezone.utc)


def _scored(n: int, fused: float, published: datetime | None) -> Scored:
    article = Article(id=f"a{n}", url=f"https://example.com/{n}", text="text", published=published)
    passage = Passage(n, article.id, 0, 0, 4, "text")
    return Scored(Hit(passage, fused, 0.0, fused, n), article, np.zeros(3, dtype=np.float32))


def _order(hits: list[Scored]) -> list[int]:
    return [s.hit.passage.id for s in hits]


def test_a_recent_story_passes_a_slightly_better_old_one() -> None:
    old = _scored(1, 0.80, NEWEST - timedelta(days=3 * 365))
    new = _scored(2, 0.75, NEWEST)
    ranked = prefer_recent(Query("Who won the trophy?"), [old, new], 0.2, 90)
    assert _order(ranked) == [2, 1]
    assert ranked[0].hit.fused == 0.75 + 0.2
    assert [s.hit.rank for s in ranked] == [1, 2]


def test_a_much_better_old_story_keeps_its_place() -> None:
    old = _scored(1, 0.90, NEWEST - timedelta(days=3 * 365))
    new = _scored(2, 0.50, NEWEST)
    assert _order(prefer_recent(Query("Who won the trophy?"), [old, new], 0.2, 90)) == [1, 2]


def test_age_is_counted_from_the_newest_candidate_not_the_clock() -> None:
    # An archive searched years later: the newest story still gets the whole bonus.
    hits = [_scored(1, 0.5, NEWEST - timedelta(days=90)), _scored(2, 0.5, NEWEST)]
    ranked = prefer_recent(Query("What happened?"), hits, 0.2, 90)
    assert [round(s.hit.fused, 6) for s in ranked] == [0.7, 0.6]


def test_undated_articles_and_weight_zero_change_nothing() -> None:
    hits = [_scored(1, 0.8, None), _scored(2, 0.7, None)]
    assert prefer_recent(Query("What happened?"), hits, 0.2, 90) == hits
    dated = [_scored(1, 0.8, NEWEST - timedelta(days=900)), _scored(2, 0.7, NEWEST)]
    assert prefer_recent(Query("What happened?"), dated, 0.0, 90) == dated
    assert prefer_recent(Query("What happened?"), [], 0.2, 90) == []


def test_an_undated_article_gets_no_bonus_beside_dated_ones() -> None:
    hits = [_scored(1, 0.8, None), _scored(2, 0.7, NEWEST)]
    assert _order(prefer_recent(Query("What happened?"), hits, 0.2, 90)) == [2, 1]


def test_a_question_naming_an_earlier_year_is_left_alone() -> None:
    hits = [_scored(1, 0.8, datetime(2019, 5, 1, tzinfo=timezone.utc)), _scored(2, 0.75, NEWEST)]
    assert _order(prefer_recent(Query("Who won the trophy in 2019?"), hits, 0.2, 90)) == [1, 2]
    # The newest year itself is no reason to stop.
    assert _order(prefer_recent(Query("Who won the 2022 trophy?"), hits, 0.2, 90)) == [2, 1]


def test_dates_with_and_without_a_time_zone_mix() -> None:
    hits = [_scored(1, 0.8, datetime(2020, 1, 1)), _scored(2, 0.75, NEWEST)]
    assert _order(prefer_recent(Query("What happened?"), hits, 0.2, 90)) == [2, 1]


def test_the_newer_of_two_reports_comes_first(make_index: Callable[..., NewsIndex]) -> None:
    index = make_index(recent_weight=0.2)
    text = (
        "The city council approved the new harbour bridge on Tuesday after a long debate. "
        "The bridge will cost 40 million euros and open in three years, the mayor said."
    )
    index.ingest(
        [
            Article(id="old", url="https://example.com/old", text=text, published=datetime(2015, 3, 1)),
            Article(
                id="new",
                url="https://example.com/new",
                text=text.replace("Tuesday", "Monday").replace("40", "45"),
                published=datetime(2022, 3, 1),
            ),
        ]
    )
    # The two are near copies (one quote); the newer report is the one quoted.
    assert index.ask("How much will the harbour bridge cost?", k=1).quotes[0].article.id == "new"
    assert index.rank("How much will the harbour bridge cost?")[0].article.id == "new"


def test_reciprocal_rank_fusion_gets_no_bonus(make_index: Callable[..., NewsIndex]) -> None:
    index = make_index(fusion="rrf", recent_weight=0.2)
    index.ingest(
        [
            Article(
                id="old", url="https://example.com/o", text="The harbour bridge opened.", published=datetime(2015, 3, 1)
            ),
            Article(id="new", url="https://example.com/n", text="The zoo got a panda.", published=datetime(2022, 3, 1)),
        ]
    )
    assert all(s.hit.fused < 0.1 for s in index.rank("When did the harbour bridge open?"))


def test_questions_that_speak_of_the_present_are_recognised() -> None:
    for question in (
        "Who resigned this week?",
        "What did the minister announce on Sunday?",
        "Which is the latest country to join?",
        "Beyoncé released a new song. What is it called?",
        "Who recently agreed to testify?",
        "How many cases are there as of today?",
        "Who won the Hart Trophy last season?",
    ):
        assert parse_question(question).of_now, question
    for question in (
        "Who founded New York?",
        "What is the capital of France?",
        "How tall is the harbour bridge?",
        "Who won the trophy in 2019?",
    ):
        assert not parse_question(question).of_now, question


def test_a_question_about_now_prefers_the_newer_report(make_index: Callable[..., NewsIndex]) -> None:
    old = Article(
        id="old",
        url="https://example.com/old",
        text="Ferry fares across the bay rise to 9 euros in spring, the transport authority announced.",
        published=datetime(2016, 4, 1),
    )
    new = Article(
        id="new",
        url="https://example.com/new",
        text="Ferry fares across the bay rise to 12 euros in spring, the transport authority said.",
        published=datetime(2022, 4, 1),
    )
    timeless, current = "What do ferry fares across the bay rise to?", "What do ferry fares across the bay rise to now?"
    # Without the bonus the older report is the better match for both wordings.
    plain = make_index(now_weight=0.0)
    plain.ingest([old, new])
    assert plain.rank(timeless)[0].article.id == "old"
    assert plain.rank(current)[0].article.id == "old"
    # By default a question that speaks of the present gets the newer report; the other does not.
    index = make_index("default")
    index.ingest([old, new])
    assert index.rank(timeless)[0].article.id == "old"
    assert index.rank(current)[0].article.id == "new"
