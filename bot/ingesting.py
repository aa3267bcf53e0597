"""The ``ingest`` command: read paths, report problems line by line, show progress, summarise."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import click

from bot.progress import IngestProgress, count_articles
from retrieval.domain import Article
from retrieval.errors import LoaderError
from retrieval.ingest.loaders import Overrides, iter_files, load_file, parse_published
from retrieval.ingest.web import Fetcher
from retrieval.service import NewsService

__all__ = ["ingest_paths", "ingest_urls", "is_url"]


def ingest_paths(
    open_service: Callable[[], NewsService],
    paths: list[str],
    *,
    url: str | None = None,
    title: str | None = None,
    source: str | None = None,
    published: str | None = None,
    quiet_if_unchanged: bool = False,
    progress_every: float = 10.0,
) -> bool:
    """Ingest files and folders into the store ``open_service`` opens (once the paths are known good);
    return False when anything could not be read."""
    overrides = Overrides(url=url, title=title, source=source, published=parse_published(published))
    if published and overrides.published is None:
        raise LoaderError(f"--published {published!r} is not an ISO 8601 date")
    if any((url, title, source, published)) and (len(paths) != 1 or not Path(paths[0]).is_file()):
        raise LoaderError("--url, --title, --source and --published apply to a single file")
    files: list[Path] = []
    problems: list[str] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            problems.append(f"{raw}: no such file or directory")
            continue
        found = list(iter_files(path))
        if path.is_dir() and not found:
            problems.append(f"{raw}: no .txt, .md, .html or .jsonl files in this folder")
        files.extend(found)
    for problem in problems:
        click.echo(f"newsqa: {problem}", err=True)
    if not files:
        if problems:
            return False
        raise LoaderError("nothing to ingest")

    def articles() -> Iterator[Article]:
        for file in files:
            try:
                loaded, bad = load_file(file, overrides)
            except LoaderError as exc:
                problems.append(str(exc))
                click.echo(f"newsqa: {exc}", err=True)
                continue
            for item in bad:
                if item.warning:  # nothing lost: the article goes in as it is, and the run succeeds
                    click.echo(f"newsqa: warning: {item}", err=True)
                    continue
                problems.append(str(item))
                click.echo(f"newsqa: {item}", err=True)
            yield from loaded

    service = open_service()
    # A bar on a terminal, a line every progress_every seconds otherwise (logs, pipes).
    shown = IngestProgress(count_articles(files), service.config.data_path, every=progress_every)
    try:
        report = service.ingest(articles(), progress=shown.passages, on_batch=shown.batch, on_wait=shown.waiting)
    finally:
        shown.close()
    report.problems = problems
    if not (quiet_if_unchanged and report.added + report.updated == 0 and not problems):
        click.echo(report.summary(), err=quiet_if_unchanged)
    return not problems


def is_url(argument: str) -> bool:
    """Return True for an argument meant as a URL (anything with a scheme, file:// included)."""
    head, sep, _ = argument.partition("://")
    return bool(sep) and head.isalpha()


def ingest_urls(open_service: Callable[[], NewsService], urls: list[str]) -> bool:
    """Fetch pages and feeds and ingest them; return False when any could not be read."""
    service = open_service()
    ok = True
    with Fetcher(service.config.web) as fetcher:
        for url in urls:
            try:
                report = service.ingest_source(url, fetcher)
            except LoaderError as exc:
                click.echo(f"newsqa: {exc}", err=True)
                ok = False
                continue
            for problem in report.problems:
                click.echo(f"newsqa: {problem}", err=True)
            click.echo(f"{url}: {report.summary()}")
            ok = ok and not report.problems
    return ok
