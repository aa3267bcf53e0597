"""Articles stored without passages (an old data dir, a config that could split nothing) are found and repaired."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from click.testing import CliRunner

from bot.cli import cli
from retrieval.config import Config, PassageConfig
from retrieval.ingest.loaders import make_article
from retrieval.models.encoder import Encoder
from retrieval.newsindex import NewsIndex
from tests.conftest import Databases, storage_env

STORY = (
    "The Brackwater ferry will run every twenty minutes from June, the harbour board said on Monday. "
    "Until now the crossing ran twice an hour, and queues on summer weekends stretched past the fish market."
)


def test_check_reports_an_article_without_passages_and_repair_splits_it(
    make_config: Callable[..., Config], encoder: Encoder, databases: Databases | None
) -> None:
    good = make_config()
    # What the unchecked config of issue 16 did: it split articles into nothing.
    bad = dataclasses.replace(good, passages=PassageConfig(target_words=0, max_words=-3))
    article = make_article(STORY, url="https://example.org/brackwater/ferry", title="Ferry every twenty minutes")
    with NewsIndex.open(bad, encoder=encoder, create=True) as index:
        report = index.ingest([article])
        assert report.added == 1 and report.passages == 0
    with NewsIndex.open(good, encoder=encoder) as index:
        assert index.ingest([article]).skipped == 1  # unchanged text: ingest alone cannot mend it
        found = index.check()
        assert not found.ok
        assert any(article.id in p and "no passages" in p for p in found.problems), found.problems
        repaired = index.check(repair=True)
        assert repaired.ok and repaired.repaired and repaired.passages >= 1, repaired.problems
        answer = index.ask("How often will the Brackwater ferry run?")
        assert answer.answered and "every twenty minutes" in answer.quotes[0].text


@pytest.mark.processes  # the command finds the store through the environment
def test_cli_check_names_the_article_and_repair_mends_it(
    make_config: Callable[..., Config], encoder: Encoder, databases: Databases | None
) -> None:
    good = make_config()
    bad = dataclasses.replace(good, passages=PassageConfig(target_words=0, max_words=-3))
    article = make_article(STORY, url="https://example.org/brackwater/ferry-2", title="Ferry")
    with NewsIndex.open(bad, encoder=encoder, create=True) as index:
        index.ingest([article])
    env = storage_env(databases)
    runner = CliRunner()
    result = runner.invoke(cli, ["--data-dir", good.data_dir, "check"], env=env)
    assert result.exit_code == 1
    assert f"problem: article {article.id} has no passages" in result.stderr
    assert "NOT OK: 1 article, 0 passages" in result.stdout
    result = runner.invoke(cli, ["--data-dir", good.data_dir, "check", "--repair"], env=env)
    assert result.exit_code == 0, result.output
    assert "repaired, ok: 1 article, 1 passage" in result.stdout
