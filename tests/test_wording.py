"""Counts read as English ("1 passage", "2 copies"), and a date that cannot be read is said out loud."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli
from retrieval.ingest.loaders import load_file
from retrieval.wording import plural

STORY = (
    "The lock keepers of the Vell canal reopened the upper gate on Thursday after a week of repairs. "
    "Boats had queued for three days below the gate, and the keepers worked through the night to clear them."
)


@pytest.mark.parametrize(
    ("count", "word", "expected"),
    [
        (1, "quote", "1 quote"),
        (0, "quote", "0 quotes"),
        (2, "passage", "2 passages"),
        (1, "copy", "1 copy"),
        (3, "copy", "3 copies"),
        (1, "entry", "1 entry"),
        (1400, "passage", "1400 passages"),
    ],
)
def test_plural_forms(count: int, word: str, expected: str) -> None:
    assert plural(count, word) == expected


def test_grouped_counts_have_commas() -> None:
    assert plural(1400, "article", grouped=True) == "1,400 articles"


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_one_article_one_passage_one_copy_are_singular(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    source = tmp_path / "one.jsonl"
    lines = [
        {"url": "https://example.org/vell/gate", "title": "Gate reopens", "text": STORY},
        {"url": "https://example.org/vell/gate-copy", "title": "Gate reopens", "text": STORY},
    ]
    source.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    code, out, err = _run("--data-dir", data, "ingest", str(source))
    assert code == 0, err
    summary = out + err
    assert "1 copy of stored articles; 1 passage (" in summary, summary
    assert "1 copies" not in summary and "1 passages (" not in summary
    code, out, _ = _run("--data-dir", data, "check")
    assert code == 0 and "ok: 2 articles, 1 passage" in out, out


def test_unreadable_published_is_stored_undated_with_a_warning_naming_the_line(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    source = tmp_path / "dates.jsonl"
    records = [
        {"url": "https://example.org/vell/a", "title": "A", "published": "2025-03-01", "text": STORY},
        {"url": "https://example.org/vell/b", "title": "B", "published": "yesterday-ish", "text": STORY + " Again."},
    ]
    source.write_text("".join(json.dumps(x) + "\n" for x in records), encoding="utf-8")
    articles, problems = load_file(source)
    assert [a.published is None for a in articles] == [False, True]
    [warning] = problems
    assert warning.warning and warning.line == 2 and "yesterday-ish" in warning.message
    code, out, err = _run("--data-dir", data, "ingest", str(source))
    assert code == 0, err
    assert f"newsqa: warning: {source}:2: published 'yesterday-ish' is not a date; stored undated" in err
    assert "2 added" in out + err


def test_unreadable_front_matter_date_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "story.md"
    path.write_text(
        f"---\ntitle: Gate reopens\nurl: https://example.org/vell/md\npublished: last Thursday\n---\n{STORY}\n",
        encoding="utf-8",
    )
    [article], [warning] = load_file(path)
    assert article.published is None
    assert warning.warning and warning.line == 4 and str(warning).startswith(f"{path}:4: published 'last Thursday'")
