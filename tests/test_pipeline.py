"""Answering as stages over one state: each stage alone, the wiring, and a stage added or switched off."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest

from retrieval.answering.abstention import Abstention
from retrieval.answering.collapse import collapse_duplicates
from retrieval.answering.marking import Marking
from retrieval.answering.pipeline import Pipeline, default_pipeline
from retrieval.answering.state import NOT_FOUND, AnswerState, Group
from retrieval.domain import Article, Hit, Passage
from retrieval.newsindex import NewsIndex
from retrieval.search import tokens
from retrieval.search.fusion import Scored

QUESTION = "How far did the Kestrel probe travel?"


def _scored(pid: int, article: str, start: int, end: int, vector: list[float], fused: float = 1.0) -> Scored:
    text = "x" * (end - start)
    passage = Passage(pid, article, 0, start, end, text)
    hit = Hit(passage, 0.5, 0.0, fused, pid)
    return Scored(hit, Article(article, f"https://example.org/{article}", "x" * 1000), np.array(vector, np.float32))


def test_the_default_pipeline_runs_the_stages_in_order() -> None:
    assert default_pipeline().names == (
        "candidates",
        "recency",
        "abstention",
        "collapse",
        "rerank",
        "marking",
        "quotes",
    )


def test_part_of_the_pipeline_is_a_wiring_change() -> None:
    pipeline = default_pipeline()
    assert pipeline.up_to("rerank").names[-1] == "rerank"
    assert "abstention" not in pipeline.without("abstention").names
    added = pipeline.inserted_after("rerank", Abstention())
    assert added.names[added.names.index("rerank") + 1] == "abstention"
    assert pipeline.replaced(Abstention(lambda state: 9.0)).names == pipeline.names
    with pytest.raises(ValueError, match="no stage 'reader'"):
        pipeline.up_to("reader")


def test_collapsing_alone_keeps_the_best_of_near_identical_passages() -> None:
    hits = [
        _scored(1, "a", 0, 100, [1, 0]),
        _scored(2, "b", 0, 100, [1, 0]),  # the same vector: a copy elsewhere
        _scored(3, "a", 10, 110, [0, 1]),  # mostly the same span of article a
        _scored(4, "a", 95, 200, [0, 1]),  # a neighbour sharing a little text
    ]
    groups = collapse_duplicates(hits, 0.9)
    assert [g.lead.hit.passage.id for g in groups] == [1, 4]
    assert [a.id for a in groups[0].also] == ["b"]


def _state(index: NewsIndex, question: str = QUESTION) -> AnswerState:
    return index.state(question)


def test_abstention_reads_the_confidence_it_is_given(sample_index: NewsIndex) -> None:
    sure = Pipeline((*default_pipeline().up_to("recency").stages, Abstention(lambda state: 9.0)))
    unsure = Pipeline((*default_pipeline().up_to("recency").stages, Abstention(lambda state: 0.0)))
    assert not sure.run(_state(sample_index)).done
    state = unsure.run(_state(sample_index))
    assert state.done and state.reason == NOT_FOUND and state.answer().reason == NOT_FOUND


def test_marking_reads_the_sentence_scores_a_stage_before_it_set(sample_index: NewsIndex) -> None:
    """How the reader will plug in: a stage sets per-sentence scores, marking marks their best."""

    class LastSentence:
        """A stand-in reader: it rates each group's last sentence best."""

        name = "reader"

        def run(self, state: AnswerState) -> None:
            for group in state.groups:
                known = state.stored(group.lead.hit.passage.id)
                assert known is not None
                group.spans = list(known.spans)
                group.sentence_scores = np.arange(len(group.spans), dtype=np.float32)

    pipeline = default_pipeline().without("rerank").inserted_after("collapse", LastSentence())
    state = pipeline.run(_state(sample_index))
    assert state.quotes and state.marked
    for group in state.marked:
        assert group.spans is not None and group.mark is not None
        assert group.mark[1] == group.spans[-1][1]  # the last sentence is marked
    shipped = default_pipeline().run(_state(sample_index))
    assert [q.highlight for q in shipped.quotes] != [q.highlight for q in state.quotes]


def test_marking_alone_skips_a_sentence_marked_already(sample_index: NewsIndex) -> None:
    state = default_pipeline().up_to("collapse").run(_state(sample_index))
    first = state.groups[0]
    twin = Group(first.lead)  # the same passage again: its best sentence is taken
    state.groups = [first, twin]
    Marking().run(state)
    assert state.marked == [first]


def test_each_text_is_tokenised_once_per_question(sample_index: NewsIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    sample_index.ask(QUESTION)  # the indexes are loaded: only the question's own texts are left
    seen: list[str] = []
    words = tokens._WORDS

    class Counting:
        def findall(self, text: str) -> list[str]:
            seen.append(text)
            return words.findall(text)

    monkeypatch.setattr(tokens, "_WORDS", Counting())
    for question in (QUESTION, "How many dock workers walked out?", "What did the council vote for?"):
        seen.clear()
        sample_index.ask(question)
        assert seen, "nothing was tokenised: the check would prove nothing"
        assert len(seen) == len(set(seen)), [t for t in set(seen) if seen.count(t) > 1][:3]


def test_a_question_nothing_answers_stops_before_the_sentences_are_scored(
    make_index: Callable[..., NewsIndex],
) -> None:
    index = make_index()
    index.ingest([Article("k", "https://example.org/k", "The Kestrel probe travelled 4.1 billion kilometres.")])
    state = default_pipeline().run(index.state("What is the boiling point of tungsten?"))
    assert state.done and state.reason == NOT_FOUND
    assert state.groups == [] and re.search("not found", state.answer().reason or "")
