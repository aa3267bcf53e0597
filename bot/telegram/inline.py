"""Inline mode: ``@BotName question`` in any chat offers the top quotes to share."""

from __future__ import annotations

import asyncio

from telegram import (
    InlineQueryResultArticle,
    InlineQueryResultsButton,
    InputTextMessageContent,
    LinkPreviewOptions,
    Update,
)
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot.telegram.errors import friendly
from bot.telegram.render import clean_text, render_quote, safe_url
from bot.telegram.state import get_state
from retrieval.answering.state import NO_MATCH
from retrieval.domain import Answer, Quote
from retrieval.errors import NewsqaError

__all__ = ["CACHE_SECONDS", "MAX_OFFSET", "inline_query"]

# Answers change only when articles are added; five minutes keeps typing cheap and results fresh.
CACHE_SECONDS = 300
MAX_OFFSET = 50


def _shorten(text: str, limit: int) -> str:
    text = clean_text(text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _result(quote: Quote, number: int, quote_chars: int) -> InlineQueryResultArticle:
    article = quote.article
    title = _shorten(article.title or article.source or article.url, 100) or "Quote"
    outlet = _shorten(article.source or "", 40)
    return InlineQueryResultArticle(
        id=f"{number}-{quote.passage_id}"[:64],
        title=title,
        description=_shorten((outlet + ": " if outlet else "") + quote.marked, 200) or None,
        input_message_content=InputTextMessageContent(
            render_quote(quote, quote_chars=quote_chars),
            parse_mode=ParseMode.HTML,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        ),
        url=safe_url(article.url),
    )


async def inline_query(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Offer the best quotes for the typed question; a hint when nothing is typed."""
    query = update.inline_query
    if query is None:
        return
    state = get_state(context)
    text = query.query.strip()

    async def hint(label: str, start: str = "help", cache: int = CACHE_SECONDS) -> None:
        await query.answer(
            [],
            cache_time=cache,
            is_personal=True,
            button=InlineQueryResultsButton(text=label[:64], start_parameter=start),
        )

    if not state.access.allows(None, query.from_user.id):
        await hint("This bot is private", cache=3600)
        return
    if not text:
        await hint("Type a question about the news")
        return
    if len(text) > state.settings.max_question_chars:
        await hint(f"Please keep questions under {state.settings.max_question_chars} characters")
        return
    try:
        offset = max(0, min(int(query.offset or 0), MAX_OFFSET))
    except ValueError:
        offset = 0
    decision = state.rate_check(query.from_user.id)
    if not decision.allowed:
        await hint(f"Too many questions; wait {decision.retry_in} s", cache=decision.retry_in)
        return
    k = state.settings.inline_results
    try:
        answer: Answer = await asyncio.to_thread(state.service.ask, text, k=k, offset=offset)
    except NewsqaError as exc:
        await hint(friendly(exc), cache=30)
        return
    quotes = answer.quotes if answer.answered else ()
    if not quotes:
        if offset == 0 and answer.reason and answer.reason.startswith(NO_MATCH):
            await hint(answer.reason[0].upper() + answer.reason[1:], start="sources")
        elif offset == 0:
            await hint("Nothing found. See what I have read", start="sources")
        else:
            await query.answer([], cache_time=CACHE_SECONDS)
        return
    results = [_result(q, offset + i, state.settings.quote_chars) for i, q in enumerate(quotes)]
    more = offset + k if len(quotes) >= k and offset + k < MAX_OFFSET else None
    await query.answer(results, cache_time=CACHE_SECONDS, next_offset=str(more) if more is not None else "")
