"""Helpers every handler uses: replying in place, the access check, sending a rendered answer."""

from __future__ import annotations

from telegram import InlineKeyboardMarkup, Message, Update
from telegram.ext import ContextTypes

from bot.telegram.delivery import send_html
from bot.telegram.render import Rendered
from bot.telegram.state import get_state

__all__ = ["PRIVATE", "admit", "reply", "send_rendered", "thread_of"]

PRIVATE = "Sorry, this bot is private. Ask its owner to add you."


def thread_of(message: Message) -> int | None:
    """Return the forum topic a message belongs to, None outside topics."""
    return message.message_thread_id if message.is_topic_message else None


async def reply(update: Update, context: ContextTypes.DEFAULT_TYPE, html: str) -> Message | None:
    """Reply to the update's message with an HTML text."""
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None:
        return None
    return await send_html(
        context.bot,
        get_state(context),
        chat.id,
        html,
        reply_to=message.message_id,
        thread_id=thread_of(message),
    )


async def admit(update: Update, context: ContextTypes.DEFAULT_TYPE, *, admin: bool = False) -> bool:
    """Return True if the sender may do this; otherwise refuse (politely, once per chat)."""
    state = get_state(context)
    chat, user = update.effective_chat, update.effective_user
    chat_id = chat.id if chat is not None else None
    user_id = user.id if user is not None else None
    if not state.access.allows(chat_id, user_id):
        key = chat_id if chat_id is not None else user_id
        if key is not None and state.access.first_refusal(key):
            await reply(update, context, PRIVATE)
        return False
    if admin and not state.access.is_admin(user_id):
        await reply(update, context, "Sorry, that command is only for the bot's admins.")
        return False
    return True


async def send_rendered(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    rendered: Rendered,
    *,
    reply_to: int | None,
    markup_for_last: InlineKeyboardMarkup | None = None,
) -> Message | None:
    """Send the messages of a rendered answer; buttons and link preview as decided there."""
    chat, message = update.effective_chat, update.effective_message
    if chat is None:
        return None
    last = None
    for i, text in enumerate(rendered.messages):
        last = await send_html(
            context.bot,
            get_state(context),
            chat.id,
            text,
            reply_to=reply_to if i == 0 else None,
            thread_id=thread_of(message) if message is not None else None,
            markup=markup_for_last if i == len(rendered.messages) - 1 else None,
            preview_url=rendered.preview_url if i == 0 else None,
        )
    return last
