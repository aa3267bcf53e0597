"""Build the Application (handlers, command menus, flood limits, token-safe logs); run polling."""

from __future__ import annotations

import logging
import os
import re
from typing import Any, TypeAlias

from telegram import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeChat,
    BotCommandScopeDefault,
    Update,
)
from telegram.constants import ChatMemberStatus
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    ExtBot,
    InlineQueryHandler,
    JobQueue,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.config import AppConfig, check_app_config
from bot.telegram import buttons, commands, handlers, inline
from bot.telegram.access import Access, RateLimiter
from bot.telegram.errors import on_error
from bot.telegram.link import TelegramLink, WatchedRequest
from bot.telegram.state import STATE_KEY, BotState, Settings, get_state
from retrieval.errors import ConfigError, NewsqaError
from retrieval.ingest.schedule import parse_every
from retrieval.service import NewsService, Refresher

__all__ = ["ALLOWED_UPDATES", "build_application", "run_polling", "serve"]

log = logging.getLogger(__name__)

BotApp: TypeAlias = (
    "Application[ExtBot[int], ContextTypes.DEFAULT_TYPE, dict[Any, Any], dict[Any, Any], "
    "dict[Any, Any], JobQueue[ContextTypes.DEFAULT_TYPE]]"
)
# What a token Telegram refuses gets (PTB's own message quotes the token).
REFUSED_BY_TELEGRAM = (
    "Telegram refused the bot token (401 Unauthorized): check NEWSQA_TELEGRAM_TOKEN or telegram.token_file"
)

ALLOWED_UPDATES = [
    Update.MESSAGE,
    Update.CALLBACK_QUERY,
    Update.INLINE_QUERY,
    Update.MY_CHAT_MEMBER,
]

PUBLIC_COMMANDS = [
    BotCommand("ask", "Ask a question about the news"),
    BotCommand("sources", "The articles I have read, newest first"),
    BotCommand("about", "How many articles I know, updated when"),
    BotCommand("help", "How to ask and what the buttons do"),
]
PRIVATE_COMMANDS = [BotCommand("start", "Start here"), *PUBLIC_COMMANDS]
ADMIN_COMMANDS = [
    *PRIVATE_COMMANDS,
    BotCommand("add", "Read a web page (admin)"),
    BotCommand("remove", "Forget an article by id or URL (admin)"),
    BotCommand("stats", "Questions, not-found rate, feedback (admin)"),
]


class _TokenFilter(logging.Filter):
    """Replace the bot token in log records, wherever a library puts it."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self._pattern = re.compile(re.escape(token))

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._pattern.search(message):
            record.msg = self._pattern.sub("<token>", message)
            record.args = None
        if record.exc_info and record.exc_info[1] is not None and self._quotes_token(record.exc_info[1]):
            # PTB's InvalidToken quotes the token itself: keep the line, drop the traceback.
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(error).__name__}; traceback withheld: it quotes the bot token)"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True

    def _quotes_token(self, error: BaseException) -> bool:
        seen: BaseException | None = error
        while seen is not None:
            if self._pattern.search(str(seen)):
                return True
            seen = seen.__cause__ or seen.__context__
        return False


# Loggers that write the Bot API URL, which holds the token: httpx at INFO (every request),
# PTB's Bot at DEBUG ("Set Bot API URL"); the others might quote one in an error.
_URL_LOGGERS = (
    "telegram.ext",  # PTB's network retry loop logs InvalidToken, whose message holds the token
    "httpx",
    "httpcore",
    "telegram.Bot",
    "telegram.ext.ExtBot",
    "telegram.ext.Updater",
    "telegram.ext.Application",
    "telegram.ext.AIORateLimiter",
)


def _guard_token(token: str) -> None:
    """Keep the token out of the logs: quieten httpx and redact it where PTB could log it."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)
    for name in _URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _TokenFilter) and f.token == token for f in logger.filters):
            logger.addFilter(_TokenFilter(token))


def settings_of(config: AppConfig) -> Settings:
    """Return the presentation settings of a config (checked when it was loaded)."""
    tg = config.telegram
    check_app_config(config)
    return Settings(
        page_size=max(1, config.core.search.k),
        inline_results=tg.inline_results,
        quote_chars=tg.quote_chars,
        link_preview=tg.link_preview,
        max_question_chars=max(1, min(tg.max_question_chars, config.core.search.max_question_chars)),
    )


def base_url_of(config: AppConfig) -> str:
    """Return the Bot API base URL: ``telegram.base_url`` (or its env override), else Telegram's."""
    return config.telegram.base_url.strip() or "https://api.telegram.org/bot"


async def _set_commands(app: BotApp) -> None:
    """Register the command menus: private chats, groups, and each admin's private chat."""
    bot = app.bot
    await bot.set_my_commands(PRIVATE_COMMANDS, scope=BotCommandScopeDefault())
    await bot.set_my_commands(PUBLIC_COMMANDS, scope=BotCommandScopeAllGroupChats())
    state: BotState = app.bot_data[STATE_KEY]
    for admin in sorted(state.access.admins):
        try:
            await bot.set_my_commands(ADMIN_COMMANDS, scope=BotCommandScopeChat(admin))
        except (BadRequest, Forbidden) as exc:
            # The admin has not started a chat with the bot yet.
            log.info("no admin command menu for %s: %s", admin, exc.message)


async def track_membership(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Stop writing to chats that blocked or removed the bot; resume when it is back."""
    change = update.my_chat_member
    if change is None:
        return
    state = get_state(context)
    status = change.new_chat_member.status
    if status in (ChatMemberStatus.BANNED, ChatMemberStatus.LEFT):
        state.stopped.add(change.chat.id)
        log.info("removed from chat %s (%s)", change.chat.id, status)
    else:
        state.stopped.discard(change.chat.id)


async def resume_chat(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A chat that writes to the bot again can be written to again."""
    if update.effective_chat is not None:
        get_state(context).stopped.discard(update.effective_chat.id)


def build_application(config: AppConfig, service: NewsService, link: TelegramLink | None = None) -> BotApp:
    """Return the bot's Application answering through ``service``, pointed at ``telegram.base_url`` when set.

    With a ``link`` every Bot API request reports to it whether Telegram could be reached.
    """
    secret = config.telegram_token()
    if secret is None:
        raise ConfigError(
            "no Telegram bot token: set NEWSQA_TELEGRAM_TOKEN or telegram.token_file (the token comes from @BotFather)"
        )
    token = secret.reveal()
    _guard_token(token)
    # Opt in to PTB 23's timedelta periods now: otherwise every RetryAfter PTB builds warns.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    builder = (
        ApplicationBuilder()
        .token(token)
        .base_url(base_url_of(config))
        .concurrent_updates(64)
        .rate_limiter(AIORateLimiter(max_retries=2))
        .post_init(_set_commands)
    )
    if link is not None:
        # The pool sizes PTB's builder gives its own requests: 256 for calls, 1 for getUpdates.
        builder = builder.request(WatchedRequest(link, connection_pool_size=256)).get_updates_request(
            WatchedRequest(link, connection_pool_size=1)
        )
    app = builder.build()
    app.bot_data[STATE_KEY] = BotState(
        config=config,
        service=service,
        settings=settings_of(config),
        access=Access.from_config(config.telegram),
        limiter=RateLimiter(config.telegram.rate_limit),
    )
    _add_handlers(app)
    return app


def _add_handlers(app: BotApp) -> None:
    message = filters.UpdateType.MESSAGE
    private = filters.ChatType.PRIVATE
    groups = filters.ChatType.GROUPS
    app.add_handler(TypeHandler(Update, resume_chat), group=-1)
    app.add_handler(ChatMemberHandler(track_membership, ChatMemberHandler.MY_CHAT_MEMBER))
    app.add_handler(CommandHandler("start", handlers.start, filters=message))
    app.add_handler(CommandHandler("help", handlers.help_command, filters=message))
    app.add_handler(CommandHandler("ask", handlers.ask, filters=message))
    app.add_handler(CommandHandler("sources", commands.sources, filters=message))
    app.add_handler(CommandHandler("about", commands.about, filters=message))
    app.add_handler(CommandHandler("add", commands.add, filters=message))
    app.add_handler(CommandHandler("remove", commands.remove, filters=message))
    app.add_handler(CommandHandler("stats", commands.stats, filters=message))
    app.add_handler(MessageHandler(message & private & filters.COMMAND, handlers.unknown_command))
    app.add_handler(MessageHandler(message & private & filters.TEXT, handlers.question))
    app.add_handler(
        MessageHandler(
            message & groups & filters.TEXT & ~filters.COMMAND & (handlers.MENTIONS_BOT | handlers.REPLIES_TO_BOT),
            handlers.group_message,
        )
    )
    app.add_handler(MessageHandler(message & private & ~filters.TEXT & ~filters.StatusUpdate.ALL, handlers.not_text))
    app.add_handler(CallbackQueryHandler(buttons.button))
    app.add_handler(InlineQueryHandler(inline.inline_query))
    app.add_error_handler(on_error)


def serve(app: BotApp, *, handle_signals: bool = True) -> None:
    """Run long polling until SIGINT/SIGTERM (or, without signals, until the loop is stopped).

    Telegram unreachable at start is waited for (PTB retries with backoff), not a crash.
    """
    if handle_signals:
        app.run_polling(allowed_updates=ALLOWED_UPDATES, bootstrap_retries=-1)
    else:
        app.run_polling(allowed_updates=ALLOWED_UPDATES, stop_signals=None, bootstrap_retries=-1)


def run_polling(config: AppConfig) -> None:
    """Open the store and run the bot with long polling until SIGINT/SIGTERM."""
    service = NewsService.open(config.core)
    # Articles another process (`newsqa ingest`) adds are answered after the next refresh.
    refresher = Refresher(service, parse_every(config.serve.refresh_every, "serve.refresh_every")).start()
    try:
        # The link logs once when Telegram cannot be reached and once when it answers again.
        token = config.telegram_token()
        app = build_application(config, service, TelegramLink(token.reveal() if token is not None else ""))
        log.info("starting the Telegram bot (long polling)")
        try:
            serve(app)
        except InvalidToken:
            raise ConfigError(REFUSED_BY_TELEGRAM) from None  # its message quotes the token: never shown
        except NetworkError as exc:  # not retried (a stop while connecting): one line, no traceback
            raise NewsqaError(f"cannot reach Telegram at {base_url_of(config)}: {exc.message}") from None
    finally:
        refresher.stop()
        service.close()
