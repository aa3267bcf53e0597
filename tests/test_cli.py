"""The newsqa command through its real entry point: ingest, ask (text and JSON), sources, show, remove, check."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli

from .conftest import BACKENDS, FIXTURES, SAMPLE, Databases, new_database

JSON_KEYS = {"question", "answered", "reason", "quotes"}
QUOTE_KEYS = {"text", "highlight", "start", "end", "score", "link", "article", "also_in"}
ARTICLE_KEYS = {"id", "url", "title", "source", "published"}


class DataDir(str):
    """A ``--data-dir`` argument that also carries the environment choosing its storage backend."""

    env: dict[str, str]

    @classmethod
    def on(cls, folder: Path, dsn: str | None) -> DataDir:
        made = cls(folder)
        made.env = {"NEWSQA_STORAGE_BACKEND": "postgres", "NEWSQA_PG_DSN": dsn} if dsn else {}
        return made


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    env = next((a.env for a in args if isinstance(a, DataDir)), None)
    result = CliRunner().invoke(cli, list(args), input=input, env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module", params=BACKENDS)
def data(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> DataDir:
    """Return a data directory (or database) holding the sample articles and a page copy."""
    dsn = new_database(request.getfixturevalue("pg_server"), "cli") if request.param == "postgres" else None
    folder = DataDir.on(tmp_path_factory.mktemp("cli") / "data", dsn)
    code, _, err = run("--data-dir", folder, "ingest", str(SAMPLE), str(FIXTURES / "page_copy.txt"))
    assert code == 0, err
    assert "11 added" in err or "11 added" in _
    return folder


@pytest.fixture
def empty_data(tmp_path: Path, databases: Databases | None) -> DataDir:
    """Return an empty data directory (or database), on each backend."""
    return DataDir.on(tmp_path / "d", databases.dsn("d") if databases is not None else None)


def test_ask_prints_quotes_with_source_and_link(data: str) -> None:
    code, out, _ = run("--data-dir", data, "ask", "How many people were evacuated because of the Pinecrest fire?")
    assert code == 0
    assert "About 6,000 people" in out
    assert "https://example.org/" in out and "#:~:text=" in out


def test_ask_json_has_exactly_the_documented_shape(data: str) -> None:
    code, out, _ = run("--data-dir", data, "ask", "--json", "-k", "2", "Who scored the winning penalty?")
    assert code == 0
    answer = json.loads(out)
    assert set(answer) == JSON_KEYS
    assert answer["answered"] is True and answer["reason"] is None
    assert 1 <= len(answer["quotes"]) <= 2
    for q in answer["quotes"]:
        assert set(q) == QUOTE_KEYS
        assert set(q["article"]) == ARTICLE_KEYS
        a, b = q["highlight"]
        assert 0 <= a < b <= len(q["text"])
        assert q["end"] - q["start"] == len(q["text"])
    shown = json.loads(run("--data-dir", data, "show", "--json", answer["quotes"][0]["article"]["id"])[1])
    q = answer["quotes"][0]
    assert shown["text"][q["start"] : q["end"]] == q["text"]


def test_ask_from_stdin_answers_one_json_line_per_question(data: str) -> None:
    questions = "How big is the asteroid Vella?\n   \nWhat is the boiling point of tungsten?\n" + "x" * 20_000 + "\n\n"
    code, out, _ = run("--data-dir", data, "ask", "--json", "-", input=questions)
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    # Output line N answers input line N, blank lines included.
    assert len(lines) == len(questions.splitlines()) == 5
    assert [a["answered"] for a in lines] == [True, False, False, False, False]
    empty = {"question": "", "answered": False, "reason": "empty question", "quotes": []}
    assert lines[1] == empty and lines[4] == empty
    assert "not found" in lines[2]["reason"]
    assert "limit" in lines[3]["reason"]


def test_not_found_is_said_plainly(data: str) -> None:
    code, out, _ = run("--data-dir", data, "ask", "What is the boiling point of tungsten?")
    assert code == 0
    assert out.strip() == "Not found in the indexed articles."


@pytest.mark.parametrize(
    ("question", "message"),
    [("", "empty"), ("   \t ", "empty"), ("y" * 20_000, "20,000 characters"), ("<b></b> ** __ []()", "no words")],
)
def test_unusable_questions_get_one_line_and_exit_1(data: str, question: str, message: str) -> None:
    code, out, err = run("--data-dir", data, "ask", question)
    assert code == 1
    assert message in err and err.count("\n") == 1 and not out


def test_a_question_full_of_markup_is_answered_as_words(data: str) -> None:
    code, out, _ = run(
        "--data-dir",
        data,
        "ask",
        "--json",
        "<b>How much</b> **land** has the [Pinecrest](http://x) <i>wildfire</i> burned?",
    )
    assert code == 0
    answer = json.loads(out)
    assert answer["answered"] and "3,400 hectares" in answer["quotes"][0]["text"]


def test_sources_lists_every_article_and_show_prints_one(data: str) -> None:
    code, out, _ = run("--data-dir", data, "sources", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 11
    assert all(r["passages"] > 0 for r in rows)
    code, out, _ = run("--data-dir", data, "show", rows[0]["url"])
    assert code == 0 and rows[0]["url"] in out


def test_check_is_clean_after_ingest(data: str) -> None:
    code, out, _ = run("--data-dir", data, "check")
    assert code == 0 and out.startswith("ok: 11 articles")


def test_remove_by_url_then_check(empty_data: DataDir) -> None:
    folder = empty_data
    assert run("--data-dir", folder, "ingest", str(FIXTURES / "article.md"))[0] == 0
    url = json.loads(run("--data-dir", folder, "sources", "--json")[1])["url"]
    code, out, _ = run("--data-dir", folder, "remove", url)
    assert code == 0 and "removed" in out
    assert run("--data-dir", folder, "check")[1].startswith("ok: 0 articles")
    code, _, err = run("--data-dir", folder, "remove", url)
    assert code == 1 and "no article" in err


def test_asking_before_anything_is_ingested(tmp_path: Path) -> None:
    code, out, err = run("--data-dir", str(tmp_path / "empty"), "ask", "anything?")
    assert code == 1 and not out
    assert err == f"newsqa: No index in {tmp_path / 'empty'} — run `newsqa ingest PATH` first\n"


def test_bad_files_are_reported_and_nothing_stored_is_lost(tmp_path: Path, empty_data: DataDir) -> None:
    folder = empty_data
    assert run("--data-dir", folder, "ingest", str(FIXTURES / "articles_good.jsonl"))[0] == 0
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.txt").write_bytes(b"")
    (bad / "binary.html").write_bytes(b"\x00\xff" * 100)
    with (bad / "huge.txt").open("wb") as fh:
        fh.truncate(50_000_000)
    shutil.copy(FIXTURES / "articles.jsonl", bad / "mixed.jsonl")
    (bad / "notes.docx").write_bytes(b"zzz")
    code, _, err = run("--data-dir", folder, "ingest", str(bad), str(tmp_path / "missing.txt"), str(bad / "notes.docx"))
    assert code == 1
    for needle in (
        "empty.txt: the file is empty",
        "binary.html: this is a binary file",
        "huge.txt: 50.0 MB is larger",
        "mixed.jsonl:3: not valid JSON",
        'mixed.jsonl:5: no "text"',
        "missing.txt: no such file",
        "notes.docx: unknown file type",
    ):
        assert needle in err, needle
    # The 4 good lines of mixed.jsonl are the same articles as before: nothing lost, nothing doubled.
    rows = run("--data-dir", folder, "sources", "--json")[1].splitlines()
    assert len(rows) == 4
    assert run("--data-dir", folder, "check")[0] == 0


def test_unknown_config_key_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('data_dir = "x"\n[search]\nkk = 3\n')
    code, _, err = run("--config", str(cfg), "sources")
    assert code == 1 and "search.'kk'" in err


def test_help_works_without_loading_the_model() -> None:
    code = (
        "import sys; from bot.cli import main; sys.argv=['newsqa','--help']\n"
        "try: main()\nexcept SystemExit: pass\nprint('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False")
    assert "ingest" in out.stdout and "repl" in out.stdout
