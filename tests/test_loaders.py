"""Reading articles from .txt, .md, .html and .jsonl files, and refusing what is not an article."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval.errors import LoaderError
from retrieval.ingest.loaders import Overrides, load_file, parse_published
from retrieval.urls import article_id, canonical_url

from .conftest import FIXTURES


def test_markdown_front_matter_gives_metadata() -> None:
    [article], problems = load_file(FIXTURES / "article.md")
    assert not problems
    assert article.url.startswith("https://example.org/")
    assert article.title and article.source and article.published
    assert not article.text.startswith("---")
    assert article.id == article_id(article.url, article.text)


def test_html_page_gives_main_text_and_metadata() -> None:
    [article], _ = load_file(FIXTURES / "article.html")
    assert article.url.startswith("https://example.org/")  # the canonical link, not file://
    assert article.source
    assert article.published is not None
    # Escaped characters come back as text, and page chrome stays out.
    assert "&" in article.text or "<" in article.text
    assert "cookie" not in article.text.lower()


def test_txt_without_url_uses_the_file_uri(tmp_path: Path) -> None:
    path = tmp_path / "story.txt"
    path.write_text("A headline here\nThe first paragraph of the story says something.\n")
    [article], _ = load_file(path)
    assert article.url == path.resolve().as_uri()


def test_overrides_replace_file_metadata() -> None:
    ov = Overrides(
        url="https://example.org/x?utm_source=feed", title="T", source="S", published=parse_published("2025-01-02")
    )
    [article], _ = load_file(FIXTURES / "page_copy.txt", ov)
    assert article.url == "https://example.org/x"
    assert (article.title, article.source) == ("T", "S")
    assert article.published is not None and article.published.year == 2025


def test_malformed_jsonl_lines_are_reported_by_number_and_good_lines_kept() -> None:
    articles, problems = load_file(FIXTURES / "articles.jsonl")
    assert len(articles) == 4
    assert sorted(p.line for p in problems if p.line) == [3, 5]
    assert all("articles.jsonl:" in str(p) for p in problems)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.txt", b"", "empty"),
        ("blob.txt", b"\x00\x01\x02binary\x00" * 10, "binary"),
        ("notes.docx", b"whatever", "unknown file type"),
        ("latin.txt", "caf\xe9 au lait".encode("latin-1"), "UTF-8"),
    ],
)
def test_unreadable_files_raise_one_clear_error(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LoaderError, match=message) as info:
        load_file(path)
    assert "\n" not in str(info.value)


def test_huge_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    with path.open("wb") as fh:
        fh.truncate(50_000_000)
    with pytest.raises(LoaderError, match="larger than"):
        load_file(path)


def test_canonical_url_drops_tracking_and_fragment() -> None:
    assert (
        canonical_url("HTTPS://Example.ORG:443/a/b?utm_medium=x&id=3&cid=feeds#top") == "https://example.org/a/b?id=3"
    )


def test_a_page_without_an_article_is_refused_like_an_empty_file() -> None:
    """A login form under a menu has text ("Home", "About", "Sign in") but no article."""
    with pytest.raises(LoaderError, match="no article text found") as info:
        load_file(FIXTURES / "login.html")
    assert "\n" not in str(info.value)


def test_cli_refuses_a_page_without_an_article_and_stores_nothing(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bot.cli import cli

    data = tmp_path / "data"
    result = CliRunner().invoke(cli, ["--data-dir", str(data), "ingest", str(FIXTURES / "login.html")])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"newsqa: {(FIXTURES / 'login.html').resolve().as_uri()}: no article text found in the page"
    ]
    assert "Login" not in result.stdout
    result = CliRunner().invoke(cli, ["--data-dir", str(data), "sources"])
    assert "Login" not in result.stdout
