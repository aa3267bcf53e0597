"""The names and numbers of a question, and whether a passage holds them."""

from __future__ import annotations

from retrieval.answering.names import name_share, question_names
from retrieval.search.tokens import tokenize


def terms(text: str) -> list[str]:
    return tokenize([text])[0]


def test_names_are_capitalised_runs_and_numbers_after_the_first_word() -> None:
    names = question_names("Which NFL team beat the Harbour Town Rovers in 2019?")
    assert [sorted(n) for n in names] == [["nfl"], sorted(terms("Harbour Town Rovers")), ["2019"]]
    assert question_names("what did the council decide?") == []
    assert question_names("  Who scored?") == []  # the first word alone is no name


def test_possessives_and_inflections_match_the_passage_terms() -> None:
    names = question_names("What was Norland's inflation rate in April?")
    passage = terms("Inflation in Norland fell to 2.9 per cent in April, the statistics office said.")
    assert name_share(names, passage) == 1.0
    other = terms("Inflation in Eastvale fell to 2.9 per cent in April.")
    assert name_share(names, other) == 0.5


def test_a_name_counts_only_when_all_its_words_are_there() -> None:
    names = question_names("Where did the Bank of Norland meet?")
    assert name_share(names, terms("The bank met in the capital.")) == 0.0
    assert name_share(names, terms("Norland's central bank met on Monday.")) == 1.0
    assert name_share([], terms("anything")) == 1.0
