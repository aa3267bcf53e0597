"""The Telegram front-end: answers questions in private chats, groups and inline mode."""

from bot.telegram.app import build_application, run_polling, serve

__all__ = ["build_application", "run_polling", "serve"]
