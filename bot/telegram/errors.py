"""The one error handler: log with context, reply kindly, and translate core errors once."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import Conflict, Forbidden, NetworkError, TelegramError
from telegram.ext import ContextTypes

from bot.telegram.delivery import send_html
from bot.telegram.render import Html
from bot.telegram.state import get_state
from retrieval.errors import EmptyIndexError, NewsqaError, QuestionError, StoreError

__all__ = ["friendly", "on_error"]

log = logging.getLogger(__name__)

SORRY = "Sorry, something went wrong on my side. Please try again in a moment."


def friendly(exc: BaseException) -> str:
    """Return what to tell a user about an error (plain text)."""
    if isinstance(exc, QuestionError):
        message = str(exc).strip()
        return (message[:1].upper() + message[1:]) if message else "I can't answer that question."
    if isinstance(exc, EmptyIndexError):
        return "I haven't read any articles yet, so I can't answer questions. Please try again later."
    if isinstance(exc, StoreError):
        return "My article index is not available right now. Please try again later."
    if isinstance(exc, NewsqaError):
        return "I couldn't do that: " + str(exc)
    return SORRY


def _describe(update: object) -> str:
    if not isinstance(update, Update):
        return "no update"
    parts = [f"update {update.update_id}"]
    if update.effective_chat is not None:
        parts.append(f"chat {update.effective_chat.id} ({update.effective_chat.type})")
    if update.effective_user is not None:
        parts.append(f"user {update.effective_user.id}")
    return ", ".join(parts)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log an error with its context and, where there is someone to tell, apologise."""
    error = context.error
    if error is None:
        return
    where = _describe(update)
    if isinstance(error, Conflict):
        log.warning("another process is polling with this bot's token (%s)", error.message)
        return
    if isinstance(error, NewsqaError):
        # Expected: the message says it all, no traceback.
        log.warning("core error (%s): %s", where, error)
    elif isinstance(error, Forbidden):
        log.info("forbidden (%s): %s", where, error.message)
        return
    elif isinstance(error, NetworkError) and not isinstance(update, Update):
        log.warning("network error while polling: %s", error.message)
        return
    else:
        log.error("error while handling %s", where, exc_info=error)
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    if update.callback_query is not None or isinstance(error, TelegramError):
        # A pressed button was already answered; a Telegram failure would likely fail again.
        return
    message = update.effective_message
    await send_html(
        context.bot,
        get_state(context),
        update.effective_chat.id,
        Html.text(friendly(error)).markup,
        reply_to=message.message_id if message is not None else None,
        thread_id=message.message_thread_id if message is not None and message.is_topic_message else None,
    )
