"""Pressed buttons: More, 👍/👎 and /sources paging. Every press is answered exactly once."""

from __future__ import annotations

import asyncio
import logging

from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.telegram.callbacks import Feedback, More, SourcesPage, decode
from bot.telegram.commands import render_sources_page
from bot.telegram.common import send_rendered
from bot.telegram.delivery import edit_html, edit_markup
from bot.telegram.errors import friendly
from bot.telegram.keyboards import answer_keyboard, next_offset_of
from bot.telegram.render import render_answer
from bot.telegram.state import BotState, get_state
from retrieval.errors import NewsqaError

__all__ = ["button"]

log = logging.getLogger(__name__)


async def _answer(query: CallbackQuery, text: str | None) -> None:
    try:
        await query.answer(text)
    except TelegramError as exc:
        # Too old or already answered: the user sees the result anyway.
        log.info("could not answer button press %s: %s", query.id, exc.message)


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Handle a pressed button and answer the press (no spinning clock)."""
    query = update.callback_query
    if query is None:
        return
    state = get_state(context)
    data = decode(query.data)
    message = query.message
    toast: str | None = None
    try:
        if data is None or not isinstance(message, Message):
            toast = "This button is no longer available."
        elif not state.access.allows(message.chat.id, query.from_user.id):
            toast = "Sorry, this bot is private."
        elif isinstance(data, More):
            toast = await more(update, context, data, message)
        elif isinstance(data, Feedback):
            toast = await feedback(context, state, query, data, message)
        elif isinstance(data, SourcesPage):
            text, markup = await asyncio.to_thread(render_sources_page, state, data.offset)
            await edit_html(context.bot, state, message.chat.id, message.message_id, text, markup)
    except NewsqaError as exc:
        await _answer(query, friendly(exc)[:200])
        raise
    except Exception:
        await _answer(query, friendly(RuntimeError())[:200])
        raise
    await _answer(query, toast)


async def more(update: Update, context: ContextTypes.DEFAULT_TYPE, data: More, message: Message) -> str | None:
    """Send the next quotes for the question an answer was for."""
    state = get_state(context)
    query = update.callback_query
    key = (message.chat.id, message.message_id)
    if key in state.busy:
        return None
    decision = state.rate_check(query.from_user.id if query is not None else None)
    if not decision.allowed:
        return f"Too many questions; please wait {decision.retry_in} s."
    state.busy.add(key)
    try:
        question = await asyncio.to_thread(state.service.logged_question, data.question_id)
        if question is None:
            return "I no longer have that question; please ask it again."
        page = state.settings.page_size
        answer = await asyncio.to_thread(state.service.ask, question, k=page, offset=data.offset)
        quotes = answer.quotes if answer.answered else ()
        current = message.reply_markup
        vote = _vote_of(current)
        if not quotes:
            await edit_markup(
                context.bot,
                state,
                *key,
                answer_keyboard(data.question_id, data.offset - page, next_offset=None, vote=vote),
            )
            return "That's all I found for this question."
        state.remember_shown(data.question_id, data.offset, tuple(q.passage_id for q in quotes))
        rendered = render_answer(
            answer,
            quote_chars=state.settings.quote_chars,
            preview="off",
            header=f"More on “{question}”",
        )
        keyboard = answer_keyboard(
            data.question_id,
            data.offset,
            next_offset=data.offset + page if len(quotes) >= page else None,
        )
        await send_rendered(update, context, rendered, reply_to=message.message_id, markup_for_last=keyboard)
        # The pressed message keeps its 👍/👎 but loses More: the follow-up carries it now.
        await edit_markup(
            context.bot,
            state,
            *key,
            answer_keyboard(data.question_id, data.offset - page, next_offset=None, vote=vote),
        )
        return None
    finally:
        state.busy.discard(key)


def _vote_of(markup: object) -> int:
    """Return the vote marked on a keyboard: +1, -1 or 0."""
    if not isinstance(markup, InlineKeyboardMarkup):
        return 0
    for row in markup.inline_keyboard:
        for b in row:
            if b.text.endswith("✓"):
                data = decode(b.callback_data if isinstance(b.callback_data, str) else None)
                if isinstance(data, Feedback):
                    return data.value
    return 0


def _shown_ids(state: BotState, question_id: int, offset: int) -> tuple[int, ...]:
    """Return the passage ids an answer showed, asking again if they were forgotten."""
    remembered = state.shown.get((question_id, offset))
    if remembered is not None:
        return remembered
    question = state.service.logged_question(question_id)
    if question is None:
        return ()
    answer = state.service.ask(question, k=state.settings.page_size, offset=offset)
    return tuple(q.passage_id for q in answer.quotes)


async def feedback(
    context: ContextTypes.DEFAULT_TYPE,
    state: BotState,
    query: CallbackQuery,
    data: Feedback,
    message: Message,
) -> str:
    """Store a 👍/👎 on the quotes of one answer message and mark the choice."""
    user_id = query.from_user.id
    if not state.remember_vote(data.question_id, data.offset, user_id, data.value):
        return "Already noted, thank you!"
    passage_ids = await asyncio.to_thread(_shown_ids, state, data.question_id, data.offset)
    await asyncio.to_thread(
        state.service.record_feedback,
        data.question_id,
        data.value,
        chat_id=message.chat.id,
        user_id=user_id,
        passage_ids=passage_ids,
    )
    keyboard = answer_keyboard(
        data.question_id,
        data.offset,
        next_offset=next_offset_of(message.reply_markup),
        vote=data.value,
    )
    await edit_markup(context.bot, state, message.chat.id, message.message_id, keyboard)
    return "Thanks for the feedback!"
