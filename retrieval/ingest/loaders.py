"""Read articles from files: plain text page copies, Markdown with front matter, HTML, JSON lines."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from retrieval.domain import Article
from retrieval.errors import LoaderError
from retrieval.ingest.textclean import clean_page_text, parse_dateline, reads_as_prose
from retrieval.urls import article_id, canonical_url

__all__ = [
    "MAX_FILE_BYTES",
    "SUFFIXES",
    "LoadProblem",
    "Overrides",
    "article_from_html",
    "iter_files",
    "load_file",
    "make_article",
    "parse_published",
]

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".jsonl")
# Larger files are refused: no single news article is anywhere near this, and reading one
# whole into memory to find out would be the bug.
MAX_FILE_BYTES = 20_000_000
MAX_JSONL_BYTES = 2_000_000_000


@dataclass(frozen=True)
class Overrides:
    """Metadata given on the command line for a single file."""

    url: str | None = None
    title: str | None = None
    source: str | None = None
    published: datetime | None = None


@dataclass(frozen=True)
class LoadProblem:
    """A part of a source that could not be read; the rest still goes in.

    A ``warning`` lost nothing of the article (say, a date that could not be read: the article
    is stored undated) and does not make the ingest fail.
    """

    path: str
    line: int | None
    message: str
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


def _published_or_warn(
    value: object, path: Path, line: int | None, problems: list[LoadProblem], key: str = "published"
) -> datetime | None:
    """Return the date ``value`` names; a value that names none is warned about, and None."""
    parsed = parse_published(value)
    if parsed is None and value not in (None, ""):
        shown = value if isinstance(value, str) else json.dumps(value)
        problems.append(LoadProblem(str(path), line, f"{key} {shown!r} is not a date; stored undated", warning=True))
    return parsed


def parse_published(value: object) -> datetime | None:
    """Return a timezone-aware datetime from an ISO 8601 or 'YYYY/MM/DD' string, else None."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not isinstance(value, str):
        return None
    text = value.strip()
    candidate = text.replace("/", "-").replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        return parse_dateline(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def make_article(
    text: str,
    *,
    url: str,
    title: str | None = None,
    source: str | None = None,
    published: datetime | None = None,
    language: str | None = None,
) -> Article:
    """Build an article with its stable id; text is normalised to '\\n' line ends."""
    # Control characters and lone surrogates cannot be shown anywhere (Telegram refuses them);
    # dropping them here keeps every quote a verbatim substring of the stored text.
    clean = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).strip()
    if not clean:
        raise LoaderError("the article has no text")
    canon = canonical_url(url) if url.startswith(("http://", "https://")) else url
    return Article(
        id=article_id(canon, clean),
        url=canon,
        text=clean,
        title=(title or "").strip() or None,
        source=(source or "").strip() or None,
        published=published,
        language=language,
        fetched_at=datetime.now(timezone.utc),
    )


def iter_files(path: Path) -> Iterator[Path]:
    """Yield the article files under ``path`` (itself if a file), sorted, hidden files skipped."""
    if path.is_file():
        yield path
        return
    for child in sorted(path.rglob("*")):
        hidden = any(p.startswith(".") for p in child.relative_to(path).parts)
        if child.is_file() and not hidden and child.suffix.lower() in SUFFIXES:
            yield child


def _read_text(path: Path, limit: int = MAX_FILE_BYTES) -> str:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise LoaderError(f"{path}: cannot read ({exc.strerror})") from None
    if size > limit:
        raise LoaderError(f"{path}: {size / 1e6:.1f} MB is larger than the {limit / 1e6:.0f} MB limit for one file")
    if size == 0:
        raise LoaderError(f"{path}: the file is empty")
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise LoaderError(f"{path}: this is a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LoaderError(f"{path}: not UTF-8 text") from None


def load_file(path: Path, overrides: Overrides | None = None) -> tuple[list[Article], list[LoadProblem]]:
    """Read one file into articles; problems with single records are returned, not raised."""
    ov = overrides or Overrides()
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise LoaderError(f"{path}: unknown file type {suffix or '(none)'!r}; expected one of {', '.join(SUFFIXES)}")
    if suffix == ".jsonl":
        return _load_jsonl(path, ov)
    raw = _read_text(path)
    file_url = path.resolve().as_uri()
    problems: list[LoadProblem] = []
    if suffix == ".txt":
        cleaned = clean_page_text(raw)
        if not cleaned.text:
            raise LoaderError(f"{path}: no article text found")
        article = make_article(
            cleaned.text,
            url=ov.url or file_url,
            title=ov.title or cleaned.title,
            source=ov.source,
            published=ov.published or cleaned.published,
        )
    elif suffix in (".md", ".markdown"):
        meta, lines, body = _front_matter(raw, path)
        key = "published" if meta.get("published") else "date"
        published = ov.published or _published_or_warn(meta.get(key), path, lines.get(key), problems, key)
        article = make_article(
            body,
            url=ov.url or meta.get("url") or file_url,
            title=ov.title or meta.get("title"),
            source=ov.source or meta.get("source"),
            published=published,
        )
    else:
        article = article_from_html(raw, url=ov.url, fallback_url=file_url)
        article = replace(
            article,
            title=ov.title or article.title,
            source=ov.source or article.source,
            published=ov.published or article.published,
        )
    return [article], problems


def article_from_html(html: str, *, url: str | None = None, fallback_url: str | None = None) -> Article:
    """Extract an article's main text and metadata from a page with trafilatura."""
    import trafilatura

    doc = trafilatura.bare_extraction(html, url=url, with_metadata=True, include_comments=False, include_tables=False)
    data = doc.as_dict() if doc is not None and hasattr(doc, "as_dict") else (doc or {})
    text = data.get("text") or ""
    paragraphs = [p.strip() for p in text.split("\n") if p.strip()]
    # A login form or a bare menu leaves a few labels ("Home", "About", "Sign in"): no article.
    if not reads_as_prose(paragraphs):
        raise LoaderError(f"{url or fallback_url}: no article text found in the page")
    found_url = url or data.get("url") or fallback_url
    if not found_url:
        raise LoaderError("the page has no URL; give one")
    return make_article(
        "\n\n".join(paragraphs),
        url=found_url,
        title=data.get("title"),
        source=data.get("sitename") or data.get("hostname"),
        published=parse_published(data.get("date")),
        language=data.get("language"),
    )


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_FRONT = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*\n", re.S)


def _front_matter(raw: str, path: Path) -> tuple[dict[str, str], dict[str, int], str]:
    """Return the front matter's keys and values, the line number of each key, and the body."""
    text = raw.replace("\r\n", "\n")
    m = _FRONT.match(text)
    if not m:
        return {}, {}, text
    meta: dict[str, str] = {}
    lines: dict[str, int] = {}
    for n, line in enumerate(m.group(1).split("\n"), start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise LoaderError(f"{path}:{n}: front matter line is not 'key: value'")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        meta[key.strip().lower()] = value
        lines[key.strip().lower()] = n
    return meta, lines, text[m.end() :]


def _load_jsonl(path: Path, ov: Overrides) -> tuple[list[Article], list[LoadProblem]]:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise LoaderError(f"{path}: cannot read ({exc.strerror})") from None
    if size == 0:
        raise LoaderError(f"{path}: the file is empty")
    if size > MAX_JSONL_BYTES:
        raise LoaderError(f"{path}: larger than {MAX_JSONL_BYTES / 1e9:.0f} GB")
    articles: list[Article] = []
    problems: list[LoadProblem] = []
    with path.open("rb") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8-sig"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                problems.append(LoadProblem(str(path), n, f"not valid JSON ({exc.__class__.__name__})"))
                continue
            if not isinstance(record, dict):
                problems.append(LoadProblem(str(path), n, "not a JSON object"))
                continue
            text = record.get("text")
            if not isinstance(text, str) or not text.strip():
                problems.append(LoadProblem(str(path), n, 'no "text"'))
                continue
            url = record.get("url") if isinstance(record.get("url"), str) and record.get("url") else None
            published = ov.published or _published_or_warn(record.get("published"), path, n, problems)
            try:
                articles.append(
                    make_article(
                        text,
                        url=ov.url or url or f"{path.resolve().as_uri()}#line={n}",
                        title=ov.title or _str(record.get("title")),
                        source=ov.source or _str(record.get("source")),
                        published=published,
                    )
                )
            except LoaderError as exc:
                problems.append(LoadProblem(str(path), n, str(exc)))
    if not articles and not problems:
        raise LoaderError(f"{path}: no articles in the file")
    return articles, problems


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
