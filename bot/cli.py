"""The ``newsqa`` command: ingest, ask, repl, sources, show, remove, check, eval, db, migrate, bot, serve.

Commands parse arguments, call the core and print. Core errors become one line on stderr and
exit status 1, never a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from bot.config import AppConfig, load_app_config
from retrieval.config import Config
from retrieval.errors import NewsqaError
from retrieval.wording import plural

if TYPE_CHECKING:
    from retrieval.service import NewsService

F = TypeVar("F", bound=Callable[..., Any])

SAMPLE_DIR = Path(__file__).parent / "sample" / "articles"


@dataclasses.dataclass
class State:
    """What the group options set up for the commands."""

    config_path: str | None
    data_dir: str | None
    verbose: int
    _config: AppConfig | None = None

    @property
    def app_config(self) -> AppConfig:
        """Return the whole configuration, read and checked once."""
        if self._config is None:
            config = load_app_config(self.config_path)
            if self.data_dir:
                config = config.with_data_dir(self.data_dir)
            self._config = config
        return self._config

    @property
    def config(self) -> Config:
        """Return the core's configuration."""
        return self.app_config.core


@contextmanager
def reported() -> Iterator[None]:
    """Turn core errors into one line on stderr and exit status 1."""
    try:
        yield
    except NewsqaError as exc:
        click.echo(f"newsqa: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("newsqa: interrupted", err=True)
        sys.exit(130)


def open_service(state: State, create: bool = False) -> NewsService:
    """Open the configured store for this command; it is closed when the command ends."""
    from retrieval.service import NewsService  # the core loads only for the commands that use it

    service = NewsService.open(state.config, create=create)
    # Give back the connections (the postgres backend's pools) when the command ends.
    click.get_current_context().call_on_close(service.close)
    return service


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="TOML config file (else $NEWSQA_CONFIG, else ./config.toml).",
)
@click.option(
    "--data-dir", type=click.Path(file_okay=False), help="Data directory (overrides the config and $NEWSQA_DATA_DIR)."
)
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
@click.version_option(package_name="newsqa")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, data_dir: str | None, verbose: int) -> None:
    """Answer questions about the news with verbatim quotes from the articles."""
    from bot.logs import setup_logging

    setup_logging(["WARNING", "INFO", "DEBUG"][min(verbose, 2)])
    ctx.obj = State(config_path, data_dir, verbose)


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--url", help="URL of the article (single file only).")
@click.option("--title", help="Title of the article (single file only).")
@click.option("--source", help="Outlet name (single file only).")
@click.option("--published", help="Publication date, ISO 8601 (single file only).")
@click.option(
    "--progress-every",
    type=click.FloatRange(0.1),
    default=10.0,
    show_default=True,
    help="Seconds between progress lines when stderr is not a terminal (a terminal gets a bar).",
)
@click.pass_obj
def ingest(
    state: State,
    paths: tuple[str, ...],
    url: str | None,
    title: str | None,
    source: str | None,
    published: str | None,
    progress_every: float,
) -> None:
    """Add articles from files and folders (.txt .md .html .jsonl), web pages and RSS/Atom feeds (URLs)."""
    from bot.ingesting import ingest_paths, ingest_urls, is_url

    urls = [p for p in paths if is_url(p)]
    files = [p for p in paths if not is_url(p)]
    with reported():
        ok = True
        if urls:
            if any((url, title, source, published)):
                raise click.UsageError("--url, --title, --source and --published apply to a single file")
            ok = ingest_urls(lambda: open_service(state, create=True), urls)
        if files:
            opened = lambda: open_service(state, create=True)  # noqa: E731 - once the paths are known good
            done = ingest_paths(
                opened, files, url=url, title=title, source=source, published=published, progress_every=progress_every
            )
            ok = done and ok
    if not ok:
        sys.exit(1)


@cli.command()
@click.argument("question", nargs=-1, required=True)
@click.option("-k", "k", type=click.IntRange(1, 50), default=None, help="How many quotes (default from config: 3).")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON (one object per question).")
@click.pass_obj
def ask(state: State, question: tuple[str, ...], k: int | None, as_json: bool) -> None:
    """Answer QUESTION; with '-' read one question per line from stdin."""
    from bot.asking import ask_many, ask_one

    with reported():
        service = open_service(state)
        if question == ("-",):
            ask_many(service, sys.stdin, k, as_json)
        else:
            ask_one(service, " ".join(question), k, as_json)


@cli.command()
@click.option("--sample", is_flag=True, help="Ingest the bundled sample articles first.")
@click.option("-k", "k", type=click.IntRange(1, 50), default=None, help="How many quotes per answer.")
@click.pass_obj
def repl(state: State, sample: bool, k: int | None) -> None:
    """Ask questions interactively."""
    from bot.repl import run_repl

    with reported():
        if sample:
            from bot.ingesting import ingest_paths

            service = open_service(state, create=True)
            ingest_paths(lambda: service, [str(SAMPLE_DIR)], quiet_if_unchanged=True)
        else:
            service = open_service(state)
        run_repl(service, k)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@click.option("-n", "--limit", type=click.IntRange(1), default=None, help="Show at most N articles.")
@click.pass_obj
def sources(state: State, as_json: bool, limit: int | None) -> None:
    """List the stored articles, newest first."""
    from bot.terminal import format_article_line
    from retrieval.serialize import article_to_dict

    with reported():
        for info in open_service(state).sources(limit=limit):
            if as_json:
                click.echo(json.dumps({**article_to_dict(info.article), "passages": info.passages}, ensure_ascii=False))
            else:
                line = f"{info.article.id}  {info.passages:3d}  {format_article_line(info.article)}"
                click.echo(f"{line}\n{'':22}{info.article.url}")


@cli.command()
@click.argument("article")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def show(state: State, article: str, as_json: bool) -> None:
    """Print one stored article (by id or URL) with its text."""
    from bot.terminal import format_article_line, safe
    from retrieval.serialize import article_to_dict

    with reported():
        found = open_service(state).get(article)
        if as_json:
            click.echo(json.dumps({**article_to_dict(found), "text": found.text}, ensure_ascii=False))
        else:
            click.echo(f"{format_article_line(found)}\n{safe(found.url)}\n\n{safe(found.text)}")


@cli.command()
@click.argument("article")
@click.pass_obj
def remove(state: State, article: str) -> None:
    """Delete an article (by id or URL) and its passages."""
    with reported():
        gone = open_service(state).remove(article)
        click.echo(f"removed {gone.id} {gone.url}")


@cli.command()
@click.option("--repair", is_flag=True, help="Rebuild the indexes from the store.")
@click.pass_obj
def check(state: State, repair: bool) -> None:
    """Verify that the store and the indexes agree."""
    with reported():
        report = open_service(state).check(repair=repair)
        for problem in report.problems:
            click.echo(f"problem: {problem}", err=True)
        status = "repaired, " if report.repaired else ""
        counts = f"{plural(report.articles, 'article')}, {plural(report.passages, 'passage')}"
        click.echo(f"{status}{'ok' if report.ok else 'NOT OK'}: {counts}")
        if not report.ok:
            sys.exit(1)


@cli.command(name="eval")
@click.argument("questions", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--compare", is_flag=True, help="Also run dense-only and lexical-only side by side.")
@click.option(
    "--off-topic", is_flag=True, help="The questions are not answered by these articles: report how many are refused."
)
@click.option("--limit", type=click.IntRange(1), default=None, help="Use the first N questions.")
@click.option("--details", type=click.Path(dir_okay=False), help="Write per-question results (JSON lines) here.")
@click.pass_obj
def eval_command(
    state: State, questions: str, as_json: bool, compare: bool, off_topic: bool, limit: int | None, details: str | None
) -> None:
    """Score answers against QUESTIONS.jsonl: Recall@1/5/10, MRR@10, marking, abstention, latency."""
    from bot.evaluating import run_eval

    with reported():
        run_eval(
            open_service(state),
            Path(questions),
            as_json=as_json,
            compare=compare,
            off_topic=off_topic,
            limit=limit,
            details=details,
        )


@cli.group()
def db() -> None:
    """Manage the PostgreSQL database of the postgres backend."""


@db.command()
@click.pass_obj
def upgrade(state: State) -> None:
    """Create or upgrade the database's tables to this version of newsqa."""
    from retrieval.service import upgrade_store

    with reported():
        applied, version = upgrade_store(state.config)
        for step in applied:
            click.echo(f"applied migration {step}")
        click.echo(f"database schema at version {version}" + ("" if applied else " (already up to date)"))


@cli.command()
@click.option("--from", "source", required=True, help="Backend to copy from (local, postgres).")
@click.option("--to", "target", required=True, help="Empty backend to copy to (local, postgres).")
@click.pass_obj
def migrate(state: State, source: str, target: str) -> None:
    """Copy articles, passages, vectors, questions and feedback between the data directory and the database.

    Nothing is embedded again.
    """
    from retrieval.service import migrate_store

    with reported():
        report = migrate_store(state.config, source, target)
        click.echo(
            f"copied {plural(report.articles, 'article')}, {plural(report.passages, 'passage')},"
            f" {plural(report.questions, 'question')} and {report.feedback} feedback from {source} to {target}"
        )


@cli.command(name="bot")
@click.pass_obj
def bot_command(state: State) -> None:
    """Run the Telegram bot with long polling."""
    with reported():
        from bot.telegram import run_polling

        run_polling(state.app_config)


@cli.command()
@click.option(
    "--mode",
    type=click.Choice(["polling", "webhook"]),
    default=None,
    help="How to receive updates (default: serve.mode, else polling).",
)
@click.pass_obj
def serve(state: State, mode: str | None) -> None:
    """Run the bot and poll the [[feeds]] of the config until SIGTERM/SIGINT."""
    with reported():
        from bot.serve.runner import run_service

        run_service(state.app_config, mode=mode, verbose=state.verbose)


def main() -> None:
    """Run the command line."""
    cli(prog_name="newsqa")


if __name__ == "__main__":
    main()
