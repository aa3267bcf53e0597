"""Who may use the bot and how often: the allowlist and the per-user question rate limit."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.config import TelegramConfig

__all__ = ["Access", "RateDecision", "RateLimiter"]


@dataclass
class Access:
    """The allowlist: with no chats and no users listed, everyone may ask.

    A message is allowed when its chat is listed or its sender is; admins are always allowed.
    Each refused chat (or user, for inline queries) is told once, then ignored.
    """

    allowed_chats: frozenset[int] = frozenset()
    allowed_users: frozenset[int] = frozenset()
    admins: frozenset[int] = frozenset()
    _told: set[int] = field(default_factory=set)

    @classmethod
    def from_config(cls, config: TelegramConfig) -> Access:
        """Return the access rules of a config."""
        return cls(
            frozenset(config.allowed_chats),
            frozenset(config.allowed_users),
            frozenset(config.admins),
        )

    @property
    def open(self) -> bool:
        """Return True when no allowlist is configured."""
        return not self.allowed_chats and not self.allowed_users

    def is_admin(self, user_id: int | None) -> bool:
        """Return True if ``user_id`` is one of the configured admins."""
        return user_id is not None and user_id in self.admins

    def allows(self, chat_id: int | None, user_id: int | None) -> bool:
        """Return True if a message in ``chat_id`` from ``user_id`` may be answered."""
        if self.open or self.is_admin(user_id):
            return True
        return (chat_id is not None and chat_id in self.allowed_chats) or (
            user_id is not None and user_id in self.allowed_users
        )

    def first_refusal(self, key: int) -> bool:
        """Return True the first time ``key`` is refused, False after that."""
        if key in self._told:
            return False
        self._told.add(key)
        return True


@dataclass(frozen=True)
class RateDecision:
    """Whether a question may be answered now; if not, when, and whether to say so."""

    allowed: bool
    retry_in: int = 0
    notify: bool = False


@dataclass
class RateLimiter:
    """At most ``per_minute`` questions per user in any 60-second window; 0 means no limit.

    A user over the limit is told once, then ignored until the window lets them in again.
    """

    per_minute: int
    window: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _asked: dict[int, deque[float]] = field(default_factory=dict)
    _told: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, user_id: int | None) -> RateDecision:
        """Count one question by ``user_id`` if the limit allows it."""
        if self.per_minute <= 0 or user_id is None:
            return RateDecision(True)
        now = self.clock()
        with self._lock:
            times = self._asked.setdefault(user_id, deque())
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) < self.per_minute:
                times.append(now)
                self._told.discard(user_id)
                return RateDecision(True)
            retry_in = max(1, math.ceil(times[0] + self.window - now))
            notify = user_id not in self._told
            self._told.add(user_id)
            return RateDecision(False, retry_in, notify)

    def forget_idle(self) -> None:
        """Drop users with no question in the current window (keeps memory bounded)."""
        now = self.clock()
        with self._lock:
            for user_id in [u for u, t in self._asked.items() if not t or t[-1] <= now - self.window]:
                del self._asked[user_id]
                self._told.discard(user_id)
