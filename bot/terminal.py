"""Render answers and articles for a terminal or a pipe."""

from __future__ import annotations

import re
import textwrap

from retrieval import Answer, Article, Quote

__all__ = ["format_answer", "format_article_line", "format_quote", "safe"]

# Control characters in article text could move the cursor or recolour the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x9b]")
BOLD, RESET, DIM = "\x1b[1;33m", "\x1b[0m", "\x1b[2m"


def safe(text: str) -> str:
    """Return ``text`` without terminal control characters."""
    return _CONTROL.sub("", text)


def _date(article: Article) -> str:
    return article.published.date().isoformat() if article.published else "undated"


def format_article_line(article: Article) -> str:
    """Return 'title · outlet · date' for an article."""
    parts = [article.title or "(untitled)", article.source or "", _date(article)]
    return safe(" · ".join(p for p in parts if p))


def format_quote(n: int, quote: Quote, color: bool, width: int = 100) -> str:
    """Return one numbered quote: the passage with its marked sentence, then its source."""
    a, b = quote.highlight
    before, marked, after = quote.text[:a], quote.text[a:b], quote.text[b:]
    if color:
        body = f"{safe(before)}{BOLD}{safe(marked)}{RESET}{safe(after)}"
    else:
        body = f"{safe(before)}»{safe(marked)}«{safe(after)}"
    paragraphs = [p for p in body.split("\n") if p.strip()]
    wrapped = "\n".join(
        textwrap.fill(p, width=width, initial_indent="   ", subsequent_indent="   ") for p in paragraphs
    )
    lines = [f"{n}.{wrapped[2:]}", f"   — {format_article_line(quote.article)}", f"   {safe(quote.link)}"]
    if quote.also_in:
        outlets = ", ".join(safe(x.source or x.url) for x in quote.also_in)
        lines.append(f"   also in: {outlets}")
    return "\n".join(lines)


def format_answer(answer: Answer, color: bool = False, start: int = 1) -> str:
    """Return a whole answer for the terminal."""
    if not answer.answered:
        if answer.reason and "found" not in answer.reason:
            # Why, when it is more than "not found": "no article matches source:norland".
            return f"Not found: {safe(answer.reason)}."
        return "Not found in the indexed articles."
    return "\n\n".join(format_quote(start + i, q, color) for i, q in enumerate(answer.quotes))
