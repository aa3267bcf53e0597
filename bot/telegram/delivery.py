"""Sending to Telegram as Telegram answers: wait on 429, stop on 403, retry lost connections.

Every message the bot sends goes through :func:`deliver`, so the rules live in one place:

* 429 Too Many Requests: wait ``retry_after`` seconds, then send again;
* 403 Forbidden (blocked by the user, kicked from the group): stop writing to that chat until
  it writes to the bot again;
* 400 "message is not modified": the message already shows what was wanted; done;
* a group upgraded to a supergroup (``ChatMigrated``): send to the new chat id;
* network errors and 5xx: retry with exponential back-off, then give up and log.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from telegram import InlineKeyboardMarkup, LinkPreviewOptions, Message, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter
from telegram.ext import ExtBot

from bot.telegram.state import BotState

__all__ = ["deliver", "edit_html", "edit_markup", "is_not_modified", "retry_seconds", "send_html"]

log = logging.getLogger(__name__)

T = TypeVar("T")
ATTEMPTS = 5
BACKOFF = 0.25  # seconds before the first retry; doubles each time
MAX_WAIT = 60.0  # a longer flood wait is not worth holding an answer for


def retry_seconds(exc: RetryAfter) -> float:
    """Return how long Telegram asked to wait, in seconds."""
    with warnings.catch_warnings():
        # PTB 22 warns that retry_after will become a timedelta; accept both.
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def is_not_modified(exc: BadRequest) -> bool:
    """Return True for Telegram's 400 "message is not modified"."""
    return "message is not modified" in exc.message.lower()


async def deliver(state: BotState, chat_id: int, send: Callable[[int], Awaitable[T]]) -> T | None:
    """Run ``send(chat_id)`` under Telegram's rules; return its result, None if not delivered."""
    if chat_id in state.stopped:
        return None
    delay = BACKOFF
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await send(chat_id)
        except RetryAfter as exc:
            wait = retry_seconds(exc)
            if wait > MAX_WAIT:
                log.warning("flood wait of %.0f s for chat %s; dropping the message", wait, chat_id)
                return None
            log.info("flood control: waiting %.1f s before writing to chat %s", wait, chat_id)
            await asyncio.sleep(wait)
        except Forbidden as exc:
            log.info("chat %s refused the bot (%s); not writing there any more", chat_id, exc.message)
            state.stopped.add(chat_id)
            return None
        except ChatMigrated as exc:
            log.info("chat %s became supergroup %s", chat_id, exc.new_chat_id)
            chat_id = exc.new_chat_id
        except BadRequest as exc:
            if is_not_modified(exc):
                return None
            raise
        except NetworkError as exc:
            if attempt == ATTEMPTS:
                log.warning("giving up on chat %s after %d attempts: %s", chat_id, attempt, exc.message)
                return None
            log.info(
                "network error writing to chat %s (%s); retrying in %.2f s",
                chat_id,
                exc.message,
                delay,
            )
            await asyncio.sleep(delay)
            delay *= 2
    return None


def _preview(url: str | None) -> LinkPreviewOptions:
    # Explicit is_disabled either way: PTB merges per-message options with Defaults field by field.
    if url:
        return LinkPreviewOptions(is_disabled=False, url=url, prefer_small_media=True)
    return LinkPreviewOptions(is_disabled=True)


async def send_html(
    bot: ExtBot[None],
    state: BotState,
    chat_id: int,
    text: str,
    *,
    reply_to: int | None = None,
    thread_id: int | None = None,
    markup: InlineKeyboardMarkup | None = None,
    preview_url: str | None = None,
) -> Message | None:
    """Send one HTML message; return it, or None if it could not be delivered."""

    async def send(target: int) -> Message:
        return await bot.send_message(
            target,
            text,
            parse_mode=ParseMode.HTML,
            link_preview_options=_preview(preview_url),
            reply_parameters=(
                ReplyParameters(reply_to, allow_sending_without_reply=True)
                if reply_to is not None and target == chat_id
                else None
            ),
            message_thread_id=thread_id,
            reply_markup=markup,
        )

    return await deliver(state, chat_id, send)


async def edit_html(
    bot: ExtBot[None],
    state: BotState,
    chat_id: int,
    message_id: int,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
) -> None:
    """Replace the text (and buttons) of one of the bot's messages."""

    async def edit(target: int) -> object:
        return await bot.edit_message_text(
            text,
            chat_id=target,
            message_id=message_id,
            parse_mode=ParseMode.HTML,
            link_preview_options=_preview(None),
            reply_markup=markup,
        )

    await deliver(state, chat_id, edit)


async def edit_markup(
    bot: ExtBot[None],
    state: BotState,
    chat_id: int,
    message_id: int,
    markup: InlineKeyboardMarkup | None,
) -> None:
    """Replace the buttons under one of the bot's messages."""

    async def edit(target: int) -> object:
        return await bot.edit_message_reply_markup(chat_id=target, message_id=message_id, reply_markup=markup)

    await deliver(state, chat_id, edit)
