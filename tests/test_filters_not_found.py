"""A question whose filters (source:, since:, until:) leave no article says so, in every front-end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.telegram.render import render_answer
from retrieval.answering.state import NOT_FOUND
from retrieval.newsindex import NewsIndex

from .conftest import SAMPLE

NO_SOURCE = "Who won the cup final? source:norland"


@pytest.mark.parametrize(
    ("question", "reason"),
    [
        (NO_SOURCE, "no article matches source:norland"),
        ("Who won the cup final? since:2031-01-01", "no article matches since:2031-01-01"),
        (
            'rate decision source:"demo daily" until:2001-12-31',
            'no article matches source:"demo daily" until:2001-12-31',
        ),
    ],
)
def test_filters_that_match_no_article_are_the_reason(sample_index: NewsIndex, question: str, reason: str) -> None:
    answer = sample_index.ask(question)
    assert not answer.answered and answer.quotes == ()
    assert answer.reason == reason


def test_filters_that_match_articles_keep_the_plain_not_found(sample_index: NewsIndex) -> None:
    answer = sample_index.ask("What is the boiling point of tungsten? source:gazette")
    assert not answer.answered and answer.reason == NOT_FOUND


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    data = str(tmp_path_factory.mktemp("filters") / "data")
    result = CliRunner().invoke(cli, ["--data-dir", data, "ingest", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    return data


def test_cli_says_why_in_text_and_json(sample_dir: str) -> None:
    text = CliRunner().invoke(cli, ["--data-dir", sample_dir, "ask", NO_SOURCE])
    assert text.exit_code == 0
    assert text.stdout.strip() == "Not found: no article matches source:norland."
    as_json = CliRunner().invoke(cli, ["--data-dir", sample_dir, "ask", "--json", NO_SOURCE])
    assert json.loads(as_json.stdout) == {
        "question": NO_SOURCE,
        "answered": False,
        "reason": "no article matches source:norland",
        "quotes": [],
    }


def test_repl_says_why(sample_dir: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--data-dir", sample_dir, "repl"],
        input=f"{NO_SOURCE}\n:quit\n",
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NEWSQA_HISTORY": str(Path(sample_dir).parent / "history")},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Not found: no article matches source:norland." in done.stdout


def test_telegram_says_why(sample_index: NewsIndex) -> None:
    [message] = render_answer(sample_index.ask(NO_SOURCE)).messages
    assert "No article I have read matches <code>source:norland</code>" in message
    assert "/sources" in message
