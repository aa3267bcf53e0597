"""The service layer every front-end uses: logged questions, ingest-then-refresh, one refresher; and
the storage factory behind it (the only reader of storage.backend) with its dump/load copy."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from retrieval.config import Config, StorageConfig
from retrieval.errors import ConfigError
from retrieval.ingest.loaders import make_article
from retrieval.models.encoder import Encoder
from retrieval.newsindex import NewsIndex
from retrieval.service import NewsService, Refresher
from retrieval.storage.factory import migrate

FERRY = make_article(
    "The harbour authority of Lindqvist Bay approved a new ferry terminal on Tuesday. "
    "The terminal will cost 48 million crowns and open in the spring of 2027.",
    url="https://example.org/ferry",
)
ORRIN = make_article(
    "Volcanologists recorded 212 small earthquakes under Mount Orrin overnight.", url="https://example.org/orrin"
)


def _service(config: Config, encoder: Encoder) -> NewsService:
    return NewsService(NewsIndex.open(config, encoder=encoder, create=True))


def test_a_logged_question_can_be_read_back_and_counts_in_the_usage(
    make_config: Callable[..., Config], encoder: Encoder
) -> None:
    service = _service(make_config(), encoder)
    service.ingest([FERRY])
    logged = service.ask_logged("How much will the ferry terminal cost?", channel="test", chat_id=7, user_id=8)
    assert logged.answer.answered and "48 million" in logged.answer.quotes[0].text
    assert service.logged_question(logged.question_id) == "How much will the ferry terminal cost?"
    service.ask_logged("What is the boiling point of tungsten?", channel="test")
    service.record_feedback(logged.question_id, 1, chat_id=7, user_id=8, passage_ids=[1])
    usage = service.usage()
    assert (usage.questions, usage.not_found, usage.feedback_up) == (2, 1, 1)


def test_what_a_service_ingests_it_answers_at_once_and_others_after_a_refresh(
    make_config: Callable[..., Config], encoder: Encoder
) -> None:
    writer = _service(make_config(), encoder)
    writer.ingest([FERRY])
    reader = _service(make_config(), encoder)
    assert reader.ask("How much will the ferry terminal cost?").answered
    writer.ingest([ORRIN])
    question = "How many earthquakes were recorded under Mount Orrin?"
    assert writer.ask(question).quotes[0].article.url == ORRIN.url  # ingest, then refresh
    refresher = Refresher(reader, every=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while [q.article.url for q in reader.ask(question).quotes][:1] != [ORRIN.url]:
            assert time.monotonic() < deadline, "the refresher never picked up the other writer's article"
            time.sleep(0.05)
    finally:
        refresher.stop()


def test_an_unknown_backend_is_a_config_error_naming_the_known_ones(tmp_path: Path) -> None:
    config = Config(data_dir=str(tmp_path), storage=StorageConfig(backend="cassandra"))
    with pytest.raises(ConfigError, match=r'storage.backend must be one of "local", "postgres".*cassandra'):
        NewsService.open(config, create=True)


def test_migrate_is_load_of_dump_and_the_copy_answers_alike(tmp_path: Path, encoder: Encoder) -> None:
    """A local data directory copied into the in-memory test backend, nothing embedded again."""
    config = Config(data_dir=str(tmp_path / "data"))
    local = _service(config, encoder)
    local.ingest([FERRY, ORRIN, dataclasses.replace(FERRY, id="copy", url="https://example.net/ferry")])
    local.ask_logged("How much will the ferry terminal cost?", channel="test")
    report = migrate(config, "local", "memory")
    assert (report.articles, report.passages, report.questions) == (3, 2, 1)
    copy = _service(dataclasses.replace(config, storage=StorageConfig(backend="memory")), encoder)
    for question in ("How much will the ferry terminal cost?", "How many earthquakes under Mount Orrin?"):
        ours, theirs = copy.ask(question), local.ask(question)
        assert [(q.passage_id, q.highlight, [a.id for a in q.also_in]) for q in ours.quotes] == [
            (q.passage_id, q.highlight, [a.id for a in q.also_in]) for q in theirs.quotes
        ]
    assert copy.usage() == local.usage()
    with pytest.raises(Exception, match="already holds 3 articles"):
        migrate(config, "local", "memory")
