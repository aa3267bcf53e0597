"""The interactive REPL: line editing and history (readline), a few ``:`` commands."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from bot.terminal import format_answer, format_article_line
from retrieval.errors import NewsqaError

__all__ = ["run_repl"]

HELP = """Type a question and press Enter. Filters inside a question: since:YYYY-MM-DD until:YYYY-MM-DD source:NAME
  :more        the next quotes for the last question
  :sources     list the indexed articles
  :k N         show N quotes per answer
  :help        this text
  :quit        leave (or Ctrl-D)"""


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


def run_repl(index: Any, k: int | None = None) -> None:
    """Read questions until :quit or end of input, printing each answer."""
    interactive = sys.stdin.isatty()
    color = sys.stdout.isatty()
    if interactive:
        _setup_readline(Path(os.environ.get("NEWSQA_HISTORY", "~/.newsqa_history")).expanduser())
    stats = index.stats()
    print(f"newsqa — {stats.articles} articles, {stats.passages} passages.")
    print("Ask a question; :help for help, Ctrl-D to leave.")
    per_answer = k or index.config.search.k
    last: str | None = None
    shown = 0
    while True:
        try:
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
                for info in index.sources(limit=50):
                    print(f"  {info.article.id}  {format_article_line(info.article)}")
            elif text.startswith(":k"):
                value = text[2:].strip()
                if not value.isdigit() or not 1 <= int(value) <= 50:
                    print("usage: :k N   (N from 1 to 50)")
                else:
                    per_answer = int(value)
                    print(f"showing {per_answer} quotes per answer")
            elif text == ":more":
                if last is None:
                    print("ask a question first")
                else:
                    answer = index.ask(last, k=per_answer, offset=shown)
                    print(format_answer(answer, color, start=shown + 1) if answer.quotes else "no more quotes")
                    shown += len(answer.quotes)
            elif text.startswith(":"):
                print(f"unknown command {text.split()[0]}; :help lists them")
            else:
                answer = index.ask(text, k=per_answer)
                last, shown = text, len(answer.quotes)
                print(format_answer(answer, color))
        except NewsqaError as exc:
            print(f"newsqa: {exc}")
        except KeyboardInterrupt:
            print("^C")
        print()
