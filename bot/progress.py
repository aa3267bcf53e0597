"""What a long ingest shows while it runs: a progress bar on a terminal, a line every N seconds otherwise.

Articles and passages done, passages/s, words/s and the time left. The rates count from when the
work started: time spent waiting for another process's write lock is said once and left out.
"""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from retrieval.wording import plural

if TYPE_CHECKING:
    from retrieval.ingest.indexing import IngestReport

__all__ = ["IngestProgress", "count_articles", "format_duration"]


def count_articles(files: list[Path]) -> int:
    """Return how many articles the files hold, about: one per line of .jsonl, one per other file."""
    total = 0
    for path in files:
        if path.suffix.lower() != ".jsonl":
            total += 1
            continue
        try:
            with path.open("rb") as fh:
                total += sum(1 for line in fh if line.strip())
        except OSError:
            total += 1
    return total


def format_duration(seconds: float) -> str:
    """Return "45 s", "7 min", "2 h 05 min"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60:02d} min"


def _size(stream: TextIO) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return 0, 0
    return size.columns, size.lines


class IngestProgress:
    """Follow one ingest: call :meth:`passages` as passages are embedded, :meth:`batch` after each
    committed batch, :meth:`waiting` if another writer holds the lock; :meth:`close` at the end."""

    def __init__(
        self,
        total_articles: int | None,
        folder: Path,
        *,
        stream: TextIO | None = None,
        every: float = 10.0,
        tty: bool | None = None,
    ) -> None:
        self.total = total_articles
        self.folder = folder
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self.tty = self.stream.isatty() if tty is None else tty
        self._bar: Any = None
        self._report: IngestReport | None = None
        self._embedded = 0  # passages embedded since the last committed batch
        self._last_line = time.monotonic()
        self._started: float | None = time.monotonic()  # None while waiting for the lock

    # -- callbacks -----------------------------------------------------------------------------
    def waiting(self, pid: int | None) -> None:
        """Say once that another process holds the write lock."""
        who = f" (pid {pid})" if pid else ""
        print(f"newsqa: waiting for another newsqa process writing to {self.folder}{who}…", file=self.stream)
        self.stream.flush()
        self._last_line = time.monotonic()
        self._started = None

    def passages(self, count: int) -> None:
        """Count passages as the encoder finishes them."""
        if self._started is None:
            self._started = time.monotonic()
        self._embedded += count
        self._show()

    def batch(self, report: IngestReport) -> None:
        """Take the counts of a committed batch."""
        self._report = report
        self._embedded = 0
        self._show()

    def close(self) -> None:
        """Remove the bar (the summary line follows)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # -- showing -------------------------------------------------------------------------------
    def _rates(self) -> list[str]:
        """Return passages/s and words/s: of the committed batches, else of the passages so far."""
        report = self._report
        if report is not None and report.seconds > 0 and report.passages:
            seconds = report.seconds
            return [f"{report.passages / seconds:.1f} passages/s", f"{report.words / seconds:,.0f} words/s"]
        elapsed = time.monotonic() - self._started if self._started is not None else 0.0
        return [f"{self._embedded / elapsed:.1f} passages/s"] if self._embedded and elapsed > 0 else []

    def describe(self) -> str:
        """Return the progress as one line of text."""
        report = self._report
        articles = report.articles if report else 0
        passages = (report.passages if report else 0) + self._embedded
        done = (
            f"{articles:,} of {self.total:,} articles done" if self.total else plural(articles, "article", grouped=True)
        )
        parts = [done, plural(passages, "passage", grouped=True), *self._rates()]
        if report is not None and report.seconds > 0 and self.total and 0 < articles < self.total:
            left = (self.total - articles) * report.seconds / articles
            parts.append(f"about {format_duration(left)} left")
        return ", ".join(parts)

    def _show(self) -> None:
        if self.tty:
            self._show_bar()
        elif time.monotonic() - self._last_line >= self.every:
            print(f"newsqa: {self.describe()}", file=self.stream)
            self.stream.flush()
            self._last_line = time.monotonic()

    def _show_bar(self) -> None:
        if self._bar is None:
            from tqdm import tqdm

            # Made at the first sign of work, so that its rate and ETA leave out any wait for the lock.
            # A terminal that gives no size (a bare pty) would get no bar at all: take 100 x 20.
            width, height = _size(self.stream)
            self._bar = tqdm(
                total=self.total,
                unit=" articles",
                desc="ingesting",
                file=self.stream,
                leave=False,
                dynamic_ncols=width > 0,
                ncols=None if width > 0 else 100,
                nrows=None if height > 0 else 20,
            )
        report = self._report
        if report is not None:
            self._bar.n = min(report.articles, self.total or report.articles)
        passages = (report.passages if report else 0) + self._embedded
        postfix = [plural(passages, "passage", grouped=True), *self._rates()]
        self._bar.set_postfix_str(", ".join(postfix), refresh=False)
        self._bar.refresh()
