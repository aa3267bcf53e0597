"""When each feed is polled next: intervals like "15m", retries with back-off for broken ones."""

from __future__ import annotations

from dataclasses import dataclass, field

from retrieval.config.parse import MIN_INTERVAL, parse_every
from retrieval.config.sections import FeedConfig
from retrieval.errors import ConfigError

__all__ = ["FeedSchedule", "FeedStatus", "parse_every"]

# A broken feed is retried after 30 s, 60 s, 120 s, ... but never later than its own interval.
RETRY_FIRST = 30.0


@dataclass
class FeedStatus:
    """One feed's place in the schedule and how its last polls went."""

    feed: FeedConfig
    interval: float
    next_due: float
    failures: int = 0
    last_ok: float | None = None  # wall-clock time of the last good poll
    last_error: str | None = None
    polls: int = 0
    elsewhere: int = 0  # times another replica had just polled it, so this one did not


@dataclass
class FeedSchedule:
    """The feeds and when each is due; times are ``time.monotonic()`` seconds."""

    feeds: list[FeedStatus] = field(default_factory=list)

    @classmethod
    def of(cls, feeds: tuple[FeedConfig, ...], now: float) -> FeedSchedule:
        """Return a schedule where every feed is due now, in config order."""
        seen: set[str] = set()
        statuses: list[FeedStatus] = []
        for number, feed in enumerate(feeds, start=1):
            if not feed.url.strip():
                raise ConfigError(f"feed {number} has no url")
            if feed.url in seen:
                raise ConfigError(f"feed {feed.url} is listed twice")
            seen.add(feed.url)
            statuses.append(FeedStatus(feed, parse_every(feed.every, f"feeds[{number}].every"), now))
        return cls(statuses)

    def due(self, now: float) -> list[FeedStatus]:
        """Return the feeds due at ``now``, the most overdue first."""
        return sorted((s for s in self.feeds if s.next_due <= now), key=lambda s: s.next_due)

    def next_due(self) -> float | None:
        """Return when the next feed is due, None without feeds."""
        return min((s.next_due for s in self.feeds), default=None)

    def succeeded(self, status: FeedStatus, now: float, wall: float) -> None:
        """Record a good poll: the feed is due again one interval later."""
        status.failures = 0
        status.polls += 1
        status.last_ok = wall
        status.last_error = None
        status.next_due = now + status.interval

    def polled_elsewhere(self, status: FeedStatus, now: float, wait: float) -> None:
        """Record that another process polled the feed (or is polling it): look again in ``wait`` s."""
        status.elsewhere += 1
        status.next_due = now + max(MIN_INTERVAL, wait)

    def failed(self, status: FeedStatus, now: float, error: str) -> None:
        """Record a failed poll: retry sooner than the interval, backing off on each failure."""
        status.failures += 1
        status.polls += 1
        status.last_error = error
        delay = RETRY_FIRST * 2 ** min(status.failures - 1, 10)
        status.next_due = now + min(delay, status.interval)
