"""The ``--json`` contract: answers and articles as plain JSON-ready dicts."""

from __future__ import annotations

from typing import Any

from retrieval.domain import Answer, Article, Quote

__all__ = ["answer_to_dict", "article_to_dict", "quote_to_dict"]


def article_to_dict(article: Article) -> dict[str, Any]:
    """Return an article's metadata (not its text)."""
    return {
        "id": article.id,
        "url": article.url,
        "title": article.title,
        "source": article.source,
        "published": article.published.isoformat() if article.published else None,
    }


def quote_to_dict(quote: Quote) -> dict[str, Any]:
    """Return a quote in the shape of ``newsqa ask --json``."""
    return {
        "text": quote.text,
        "highlight": [quote.highlight[0], quote.highlight[1]],
        "start": quote.start,
        "end": quote.end,
        "score": quote.score,
        "link": quote.link,
        "article": article_to_dict(quote.article),
        "also_in": [article_to_dict(a) for a in quote.also_in],
    }


def answer_to_dict(answer: Answer) -> dict[str, Any]:
    """Return an answer in the shape of ``newsqa ask --json``."""
    return {
        "question": answer.question,
        "answered": answer.answered,
        "reason": answer.reason,
        "quotes": [quote_to_dict(q) for q in answer.quotes],
    }
