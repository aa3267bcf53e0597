"""What the bot keeps between updates: the service, the access rules and a little memory."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, cast

from telegram.ext import ContextTypes

from bot.config import AppConfig
from bot.telegram.access import Access, RateDecision, RateLimiter
from retrieval.service import NewsService

__all__ = ["BotState", "Settings", "get_state"]

STATE_KEY = "newsqa"
MAX_REMEMBERED = 10_000


@dataclass(frozen=True)
class Settings:
    """Presentation choices derived from the config."""

    page_size: int = 3  # quotes per answer message and per "More"
    inline_results: int = 5
    quote_chars: int = 800
    link_preview: str = "off"  # "off" or "first"
    max_question_chars: int = 500
    sources_page: int = 8


@dataclass
class BotState:
    """The service, rules and memory shared by all handlers (one per Application)."""

    config: AppConfig
    service: NewsService
    settings: Settings
    access: Access
    limiter: RateLimiter
    # Chats that answered 403: the bot stops writing there until they write again.
    stopped: set[int] = field(default_factory=set)
    # Passage ids shown per (question id, offset), for feedback; bounded, oldest dropped.
    shown: OrderedDict[tuple[int, int], tuple[int, ...]] = field(default_factory=OrderedDict)
    # Each user's last vote per (question id, offset), so a repeated press is not counted twice.
    votes: OrderedDict[tuple[int, int, int], int] = field(default_factory=OrderedDict)
    # Messages whose "More" is being served, so a double press sends one follow-up.
    busy: set[tuple[int, int]] = field(default_factory=set)

    def rate_check(self, user_id: int | None) -> RateDecision:
        """Count a question against the user's rate limit; admins are not limited."""
        if self.access.is_admin(user_id):
            return RateDecision(True)
        return self.limiter.check(user_id)

    def remember_shown(self, question_id: int, offset: int, passage_ids: tuple[int, ...]) -> None:
        """Remember which passages were shown for a question from ``offset``."""
        self.shown[(question_id, offset)] = passage_ids
        while len(self.shown) > MAX_REMEMBERED:
            self.shown.popitem(last=False)

    def remember_vote(self, question_id: int, offset: int, user_id: int, value: int) -> bool:
        """Record a user's vote; return False if it repeats their last vote on the same quotes."""
        key = (question_id, offset, user_id)
        if self.votes.get(key) == value:
            return False
        self.votes[key] = value
        while len(self.votes) > MAX_REMEMBERED:
            self.votes.popitem(last=False)
        return True


def get_state(context: ContextTypes.DEFAULT_TYPE) -> BotState:
    """Return the bot's state from a handler's context."""
    bot_data = cast(dict[str, Any], context.bot_data)
    return cast(BotState, bot_data[STATE_KEY])
