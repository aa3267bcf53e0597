"""The interactive REPL: line editing and history (readline), a few ``:`` commands."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from bot.terminal import format_answer, format_article_line
from retrieval.errors import NewsqaError
from retrieval.service import NewsService
from retrieval.wording import plural

__all__ = ["run_repl"]

HELP = """Type a question and press Enter. Filters inside a question: since:YYYY-MM-DD until:YYYY-MM-DD source:NAME
  :more        the next quotes for the last question
  :sources     list the indexed articles
  :k N         show N quotes per answer
  :help        this text
  :quit        leave (or Ctrl-D)"""


# How often Python looks at its pending signals while waiting at the prompt (see _signals_seen).
SIGNAL_CHECK_S = 0.2


def _tick(signum: int, frame: FrameType | None) -> None:
    """Do nothing: the interruption itself is the point (see _signals_seen)."""


@contextlib.contextmanager
def _signals_seen() -> Iterator[None]:
    """Wake the prompt every SIGNAL_CHECK_S seconds, so that a Ctrl-C is never left pending.

    Python's readline loop looks for signals only when its select() is interrupted; a Ctrl-C that
    arrives while readline is taking keys (a fast typist, a loaded machine) was left pending until
    the next key. A timer signal interrupts the select() and the pending Ctrl-C takes effect.
    """
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _tick)
    signal.setitimer(signal.ITIMER_REAL, SIGNAL_CHECK_S, SIGNAL_CHECK_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)


def _setup_readline(history: Path) -> None:
    try:
        import readline
    except ImportError:  # pragma: no cover - not on every platform
        return
    with contextlib.suppress(OSError):
        readline.read_history_file(history)
    readline.set_history_length(1000)
    import atexit

    def save() -> None:
        with contextlib.suppress(OSError):
            readline.write_history_file(history)

    atexit.register(save)


def run_repl(service: NewsService, k: int | None = None) -> None:
    """Read questions until :quit or end of input, printing each answer."""
    interactive = sys.stdin.isatty()
    color = sys.stdout.isatty()
    if interactive:
        _setup_readline(Path(os.environ.get("NEWSQA_HISTORY", "~/.newsqa_history")).expanduser())
    stats = service.stats()
    print(f"newsqa — {plural(stats.articles, 'article')}, {plural(stats.passages, 'passage')}.")
    print("Ask a question; :help for help, Ctrl-D to leave.")
    per_answer = k or service.config.search.k
    last: str | None = None
    shown = 0
    while True:
        try:
            with _signals_seen() if interactive else contextlib.nullcontext():
                line = input("newsqa> " if interactive else "")
        except EOFError:
            print()
            return
        except KeyboardInterrupt:
            print("^C (Ctrl-D or :quit to leave)")
            continue
        text = line.strip()
        if not text:
            continue
        try:
            if text in (":quit", ":q", ":exit"):
                return
            if text in (":help", ":h", "?"):
                print(HELP)
            elif text == ":sources":
                for info in service.sources(limit=50):
                    print(f"  {info.article.id}  {format_article_line(info.article)}")
            elif text.startswith(":k"):
                value = text[2:].strip()
                if not value.isdigit() or not 1 <= int(value) <= 50:
                    print("usage: :k N   (N from 1 to 50)")
                else:
                    per_answer = int(value)
                    print(f"showing {plural(per_answer, 'quote')} per answer")
            elif text == ":more":
                if last is None:
                    print("ask a question first")
                else:
                    answer = service.ask(last, k=per_answer, offset=shown)
                    print(format_answer(answer, color, start=shown + 1) if answer.quotes else "no more quotes")
                    shown += len(answer.quotes)
            elif text.startswith(":"):
                print(f"unknown command {text.split()[0]}; :help lists them")
            else:
                answer = service.ask(text, k=per_answer)
                last, shown = text, len(answer.quotes)
                print(format_answer(answer, color))
        except NewsqaError as exc:
            print(f"newsqa: {exc}")
        except KeyboardInterrupt:
            print("^C")
        print()
