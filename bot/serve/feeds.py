"""The feed scheduler of ``newsqa serve``: each configured feed polled on its interval, by one
replica at a time.

Several replicas may serve one store. Each feed is polled by one of them at a time, under a lock
named for the feed, and not again by another until most of its interval has passed since the
last complete poll (by any replica).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from datetime import UTC, datetime

from retrieval.config import FeedConfig
from retrieval.errors import NewsqaError
from retrieval.ingest.indexing import IngestReport
from retrieval.ingest.schedule import FeedSchedule, FeedStatus
from retrieval.ingest.web import Fetcher
from retrieval.service import NewsService
from retrieval.storage.coordination import Coordinator

__all__ = ["ELSEWHERE_SHARE", "FeedPoller"]

log = logging.getLogger(__name__)

# A feed whose last complete poll (by any replica) is younger than this share of its interval
# is not polled again yet; below 1 so that replicas' clocks and schedules drifting apart never
# stretch a feed's interval to two.
ELSEWHERE_SHARE = 0.8


class FeedPoller:
    """Poll the due feeds, one at a time, in a worker thread each; until ``stopping`` is set."""

    def __init__(self, feeds: tuple[FeedConfig, ...], takeover_every: float) -> None:
        self.schedule = FeedSchedule.of(feeds, time.monotonic())
        self.takeover_every = takeover_every
        # Set on the way out: an ingest in progress finishes its batch and stops.
        self.stop_thread = threading.Event()

    async def run(self, news: NewsService, fetcher: Fetcher, coordinator: Coordinator, stopping: asyncio.Event) -> None:
        """Poll until ``stopping`` is set."""
        while not stopping.is_set():
            for status in self.schedule.due(time.monotonic()):
                if stopping.is_set():
                    break
                await self._poll_one(news, fetcher, coordinator, status)
            due = self.schedule.next_due()
            wait = 3600.0 if due is None else max(0.05, due - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), wait)

    async def _poll_one(
        self, news: NewsService, fetcher: Fetcher, coordinator: Coordinator, status: FeedStatus
    ) -> None:
        url = status.feed.url
        try:
            report = await asyncio.to_thread(self._ingest, news, fetcher, coordinator, status.feed, status.interval)
        except NewsqaError as exc:
            self.schedule.failed(status, time.monotonic(), str(exc))
            log.warning("feed %s failed (%d in a row): %s", url, status.failures, exc)
            return
        except Exception as exc:
            self.schedule.failed(status, time.monotonic(), f"{type(exc).__name__}: {exc}")
            log.exception("feed %s failed unexpectedly", url)
            return
        if isinstance(report, float):
            self.schedule.polled_elsewhere(status, time.monotonic(), report)
            log.debug("feed %s: polled by another replica; looking again in %.0f s", url, report)
            return
        self.schedule.succeeded(status, time.monotonic(), time.time())
        for problem in report.problems:
            log.warning("feed %s: %s", url, problem)
        changed = report.added + report.updated
        log.log(logging.INFO if changed else logging.DEBUG, "feed %s: %s", url, report.summary())

    def _ingest(
        self, news: NewsService, fetcher: Fetcher, coordinator: Coordinator, feed: FeedConfig, interval: float
    ) -> IngestReport | float:
        """Poll one feed under its lock (the service then answers from the result).

        Returns the seconds to wait instead when another replica is polling the feed or has
        polled it within most of its interval.
        """
        lease = coordinator.try_lock(f"feed {feed.url}")
        if lease is None:  # look again soon: if that replica dies, its poll is taken over
            return min(interval, self.takeover_every)
        try:
            last = news.fetched_at(feed.url)
            age = (datetime.now(UTC) - last).total_seconds() if last is not None else None
            if age is not None and 0 <= age < ELSEWHERE_SHARE * interval:
                return interval - age
            return news.poll_feed(feed, fetcher, stop=self.stop_thread)
        finally:
            lease.release()
