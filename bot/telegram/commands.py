"""Commands about the articles: /sources and /about for everyone, /add, /remove, /stats for admins."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from bot.telegram.common import admit, reply, thread_of
from bot.telegram.delivery import send_html
from bot.telegram.keyboards import sources_keyboard
from bot.telegram.render import Html, pack
from bot.telegram.state import BotState, get_state
from retrieval.errors import NotFoundError
from retrieval.wording import plural

__all__ = ["about", "add", "remove", "render_sources_page", "sources", "stats"]

log = logging.getLogger(__name__)


def _date(value: Any) -> str:
    return f"{value.day} {value:%b %Y}" if value is not None else "date unknown"


def render_sources_page(state: BotState, offset: int) -> tuple[str, InlineKeyboardMarkup | None]:
    """Return one page of /sources (newest first) and its paging buttons (runs in a thread)."""
    page = state.settings.sources_page
    found = state.service.sources(limit=page + 1, offset=offset)
    shown = found[:page]
    if not shown:
        text = "I haven't read any articles yet." if offset == 0 else "There are no older articles."
        return Html.text(text).markup, sources_keyboard(offset, page, has_older=False)
    lines = [Html.text(f"Articles I have read, newest first ({offset + 1}–{offset + len(shown)}):")]
    for number, info in enumerate(shown, start=offset + 1):
        a = info.article
        title = Html.text(_clip(a.title or a.url, 150)).link(a.url)
        count = plural(info.passages, "passage", grouped=True)
        meta = " · ".join(x for x in (a.source, _date(a.published), count) if x)
        lines.append(
            Html.text(f"\n{number}. ") + title + Html.text(f"\n{_clip(meta, 200)} · ") + Html.text(a.id).wrap("code")
        )
    text = pack([Html.join(lines, "\n")])[0]
    return text, sources_keyboard(offset, page, has_older=len(found) > page)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


async def sources(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """List the most recent articles, with buttons to page through older ones."""
    if not await admit(update, context):
        return
    state = get_state(context)
    chat, message = update.effective_chat, update.effective_message
    if chat is None or message is None:
        return
    text, markup = await asyncio.to_thread(render_sources_page, state, 0)
    await send_html(
        context.bot,
        state,
        chat.id,
        text,
        reply_to=message.message_id,
        thread_id=thread_of(message),
        markup=markup,
    )


async def about(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Tell how many articles and passages are indexed, with which model, updated when."""
    if not await admit(update, context):
        return
    stats = await asyncio.to_thread(get_state(context).service.stats)
    updated = f"{stats.updated_at:%d %b %Y %H:%M} UTC" if stats.updated_at else "never"
    model = stats.model.split("|")[0]
    text = (
        Html.text("I answer questions with quotes from ")
        + Html.text(plural(stats.articles, "article", grouped=True)).wrap("b")
        + Html.text(f" ({plural(stats.passages, 'passage', grouped=True)}).\nModel: ")
        + Html.text(model).wrap("code")
        + Html.text(f"\nLast update: {updated}")
    )
    await reply(update, context, text.markup)


async def stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Show questions asked, the not-found rate and feedback counts (admins only)."""
    if not await admit(update, context, admin=True):
        return
    usage = await asyncio.to_thread(get_state(context).service.usage)
    rate = f" ({usage.not_found / usage.questions:.0%})" if usage.questions else ""
    text = (
        f"Questions: {usage.questions:,}\n"
        f"Not found: {usage.not_found:,}{rate}\n"
        f"Feedback: 👍 {usage.feedback_up:,} · 👎 {usage.feedback_down:,}"
    )
    await reply(update, context, Html.text(text).markup)


async def remove(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Forget an article given its id or URL (admins only)."""
    if not await admit(update, context, admin=True):
        return
    target = " ".join(context.args or [])
    if not target:
        await reply(
            update,
            context,
            "Usage: <code>/remove ID</code> or <code>/remove URL</code> (see /sources).",
        )
        return
    try:
        article = await asyncio.to_thread(get_state(context).service.remove, target)
    except NotFoundError:
        await reply(
            update,
            context,
            Html.text(f"No stored article has the id or URL {_clip(target, 300)}.").markup,
        )
        return
    label = Html.text(_clip(article.title or article.url, 200)).link(article.url)
    await reply(update, context, (Html.text("Removed ") + label + Html.text(".")).markup)


async def add(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Read a web page or a feed into the index (admins only)."""
    if not await admit(update, context, admin=True):
        return
    url = (context.args or [""])[0]
    if not url.startswith(("http://", "https://")):
        await reply(update, context, "Usage: <code>/add https://example.org/article</code>")
        return
    report = await asyncio.to_thread(get_state(context).service.ingest_url, url)
    await reply(update, context, Html.text(f"Read {_clip(url, 300)}: {report.summary()}").markup)
