"""Questions: private messages, /ask, /start deep links, mentions and replies in groups."""

from __future__ import annotations

import asyncio

from telegram import Message, MessageEntity, Update
from telegram.ext import ContextTypes, filters

from bot.telegram import commands
from bot.telegram.addressing import mentions_bot, question_from_payload, strip_mentions
from bot.telegram.common import admit, reply, send_rendered
from bot.telegram.keyboards import answer_keyboard
from bot.telegram.render import render_answer
from bot.telegram.state import BotState, get_state
from retrieval.domain import Answer

__all__ = [
    "MENTIONS_BOT",
    "REPLIES_TO_BOT",
    "answer_question",
    "ask",
    "group_message",
    "help_command",
    "not_text",
    "question",
    "start",
    "unknown_command",
]

WELCOME = (
    "Hello! I answer questions about the news with quotes from the articles I have read, "
    "each with its source and a link to the quoted sentence.\n\n"
    "Just write your question, e.g. <i>What did the central bank decide?</i>\n"
    "In groups, use /ask or mention me. See /help for more."
)
HELP = (
    "<b>Ask me about the news.</b> I reply with verbatim quotes from articles, the key sentence "
    "in bold, with the outlet, date and a link that opens the article at that sentence. "
    "If the articles do not answer, I say so.\n\n"
    "In a private chat, just write your question.\n"
    "In a group: /ask <i>question</i>, mention me, or reply to one of my messages.\n"
    "In any chat: type my name, then a question, to share a quote.\n\n"
    "Under each answer: <b>More</b> shows the next quotes; 👍/👎 tell me if it helped.\n\n"
    "/sources — what I have read, newest first\n"
    "/about — how many articles I know and when they were last updated"
)
ADMIN_HELP = (
    "\n\n<b>Admin</b>\n"
    "/add <i>URL</i> — read a web page\n"
    "/remove <i>ID or URL</i> — forget an article\n"
    "/stats — questions, not-found rate, feedback"
)


class _MentionsBot(filters.MessageFilter):
    """Messages that mention the bot by @username."""

    def filter(self, message: Message) -> bool:
        username = message.get_bot().username
        return mentions_bot(message.text or "", message.entities, username)


class _RepliesToBot(filters.MessageFilter):
    """Messages that reply to one of the bot's own messages."""

    def filter(self, message: Message) -> bool:
        replied = message.reply_to_message
        return replied is not None and replied.from_user is not None and replied.from_user.id == message.get_bot().id


MENTIONS_BOT = _MentionsBot(name="mentions_bot")
REPLIES_TO_BOT = _RepliesToBot(name="replies_to_bot")


def _ask_and_log(state: BotState, question: str, chat_id: int, user_id: int | None) -> tuple[Answer, int]:
    """Answer a question and record it (runs in a worker thread: embedding is CPU-bound)."""
    logged = state.service.ask_logged(
        question, channel="telegram", chat_id=chat_id, user_id=user_id, k=state.settings.page_size
    )
    return logged.answer, logged.question_id


async def answer_question(update: Update, context: ContextTypes.DEFAULT_TYPE, text: str) -> None:
    """Answer ``text`` as a question in the update's chat, within the limits."""
    state = get_state(context)
    message, chat, user = update.effective_message, update.effective_chat, update.effective_user
    if message is None or chat is None or not await admit(update, context):
        return
    text = text.strip()
    if not text:
        await reply(
            update,
            context,
            "Ask me a question after /ask, e.g. <code>/ask What did the court decide?</code>",
        )
        return
    limit = state.settings.max_question_chars
    if len(text) > limit:
        await reply(
            update,
            context,
            f"That question is {len(text):,} characters long; please keep it under {limit:,}.",
        )
        return
    decision = state.rate_check(user.id if user is not None else None)
    if not decision.allowed:
        if decision.notify:
            await reply(
                update,
                context,
                f"You are asking faster than I can read. Please wait {decision.retry_in} s and ask again.",
            )
        return
    user_id = user.id if user is not None else None
    answer, question_id = await asyncio.to_thread(_ask_and_log, state, text, chat.id, user_id)
    rendered = render_answer(answer, quote_chars=state.settings.quote_chars, preview=state.settings.link_preview)
    markup = None
    if answer.answered and answer.quotes:
        state.remember_shown(question_id, 0, tuple(q.passage_id for q in answer.quotes))
        page = state.settings.page_size
        markup = answer_keyboard(question_id, 0, next_offset=page if len(answer.quotes) >= page else None)
    await send_rendered(update, context, rendered, reply_to=message.message_id, markup_for_last=markup)


def _after_command(message: Message) -> str:
    """Return the text after the leading /command (with its @BotName), as written."""
    text = message.text or ""
    for entity in message.entities:
        if entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
            return text.encode("utf-16-le", "surrogatepass")[entity.length * 2 :].decode("utf-16-le", "surrogatepass")
    return text


async def question(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer a private message as a question."""
    message = update.effective_message
    if message is None or message.text is None:
        return
    await answer_question(update, context, strip_mentions(message.text, message.entities, context.bot.username))


async def ask(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer /ask question; with no question, ask about the replied-to message's text."""
    message = update.effective_message
    if message is None:
        return
    text = _after_command(message)
    if not text.strip() and message.reply_to_message is not None:
        text = message.reply_to_message.text or message.reply_to_message.caption or ""
    await answer_question(update, context, text)


async def group_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer a group message that mentions the bot or replies to it (its filter does the choosing)."""
    await question(update, context)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Greet the user; a deep-link payload is a question (or "help" / "sources")."""
    payload = context.args[0] if context.args else ""
    if payload == "help":
        await help_command(update, context)
    elif payload == "sources":
        await commands.sources(update, context)
    elif payload and (asked := question_from_payload(payload)):
        await answer_question(update, context, asked)
    elif await admit(update, context):
        await reply(update, context, WELCOME)


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Explain how to ask, the buttons and the commands (admin commands to admins)."""
    if not await admit(update, context):
        return
    user = update.effective_user
    extra = ADMIN_HELP if get_state(context).access.is_admin(user.id if user else None) else ""
    await reply(update, context, HELP + extra)


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Point to /help for a command the bot does not have."""
    if await admit(update, context):
        await reply(update, context, "I don't know that command. /help lists what I can do.")


async def not_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Explain that only text questions are read."""
    if await admit(update, context):
        await reply(update, context, "I can only read text. Please write your question.")
