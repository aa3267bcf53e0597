"""``newsqa serve``: the Telegram bot and the feed scheduler in one process, until SIGTERM/SIGINT.

The bot answers through the service layer; feeds are polled on their schedules in worker threads
that write through the service (ingest, then refresh), so answers never see a half-updated
index. Another process's writes (``newsqa ingest``) are picked up every ``serve.refresh_every``.
Several replicas may serve one store (``bot/serve/feeds.py``, ``bot/serve/telegram.py``).

Telegram is a network dependency, not a part of the process: while it cannot be reached the
service stays up, polls its feeds and retries it (``bot/serve/telegram.py``). Without a bot token
but with ``[[feeds]]`` it runs as a feeds-only ingestion worker (role ``feeds``).

Health, both ways: under systemd (``Type=notify``) the service sends READY=1 once it is
receiving updates (or has found Telegram unreachable, or runs feeds only), WATCHDOG=1 while the
event loop runs and the updater and the scheduler are alive, and STOPPING=1 on the way out; with
``serve.health_port`` it also answers ``GET /healthz`` (200 or 503 with a JSON body), which
container supervisors can poll; it says 503 while Telegram cannot be reached, with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from bot.config import AppConfig
from bot.logs import setup_logging
from bot.serve.feeds import FeedPoller
from bot.serve.health import sd_notify, start_health_server, watchdog_interval
from bot.serve.telegram import TelegramSide, webhook_secret
from bot.telegram.link import TelegramLink
from retrieval.config import Config
from retrieval.errors import ConfigError, NewsqaError
from retrieval.ingest.schedule import parse_every
from retrieval.ingest.web import BlockedURLError, Fetcher, vet_url
from retrieval.service import NewsService, Refresher
from retrieval.wording import plural

if TYPE_CHECKING:
    from tornado.httpserver import HTTPServer

    from bot.telegram.app import BotApp

__all__ = ["Service", "refuse_unfetchable_feeds", "run_service", "webhook_secret"]

log = logging.getLogger(__name__)

STOP_WAIT = 60.0  # seconds a feed ingest in progress may take to finish its batch on stop


def refuse_unfetchable_feeds(config: Config) -> None:
    """Refuse at start a feed URL that no poll could ever fetch (a private address, by default)."""
    for number, feed in enumerate(config.feeds, start=1):
        try:
            vet_url(feed.url, config.web)
        except BlockedURLError as exc:
            raise ConfigError(f"feed {number} can never be fetched: {exc}") from None


class Service:
    """The bot, the feed scheduler, the index refresher and the health checks of one process."""

    def __init__(self, config: AppConfig, *, mode: str | None = None) -> None:
        self.config = config
        self.mode = mode or config.serve.mode
        if self.mode not in ("polling", "webhook"):
            raise ConfigError(f'serve.mode must be "polling" or "webhook", got {self.mode!r}')
        token = config.telegram_token()
        # No bot token but feeds: a feeds-only ingestion worker (beside webhook replicas, say).
        self.feeds_only = token is None and bool(config.core.feeds)
        if self.mode == "webhook" and not config.serve.webhook_url and not self.feeds_only:
            raise ConfigError("webhook mode needs serve.webhook_url (the public https URL)")
        if token is None and not config.core.feeds:
            raise ConfigError(
                "no Telegram bot token: set NEWSQA_TELEGRAM_TOKEN or telegram.token_file (the token comes from "
                "@BotFather), or list [[feeds]] in the config to run serve as a feeds-only ingestion worker"
            )
        refuse_unfetchable_feeds(config.core)
        self.refresh_every = parse_every(config.serve.refresh_every, "serve.refresh_every")
        self.takeover_every = parse_every(config.serve.takeover_every, "serve.takeover_every")
        self.link = TelegramLink(token.reveal() if token is not None else "")
        self.feeds = FeedPoller(config.core.feeds, self.takeover_every)
        self.schedule = self.feeds.schedule
        self.started = time.time()
        self._stopping: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._feed_task: asyncio.Task[None] | None = None
        self._health: HTTPServer | None = None
        self._app: BotApp | None = None
        self._news: NewsService | None = None
        self._refresher: Refresher | None = None
        self._fetcher: Fetcher | None = None
        self._telegram: TelegramSide | None = None

    @property
    def role(self) -> str:
        """Return "feeds" without a bot, else "webhook", or "starting", "poller" or "standby"."""
        if self.feeds_only:
            return "feeds"
        if self._telegram is None:
            return "webhook" if self.mode == "webhook" else "starting"
        return self._telegram.role

    # -- running ---------------------------------------------------------------------------------
    def run(self) -> None:
        """Open (or create) the store, load the model, and serve until a stop signal."""
        from bot.telegram.app import build_application

        # Until the event loop installs its own handlers, SIGTERM is a clean exit too.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        news = NewsService.open(self.config.core, create=True)
        self._news = news
        try:
            # Load the model (and the runtime's session, made on first use) now, not at the first question.
            news.warm_up()
            app = None if self.feeds_only else build_application(self.config, news, self.link)
            self._app = app
            if app is not None:
                coordinator = news.coordinator()
                self._telegram = TelegramSide(self.config, self.mode, self.link, coordinator, self.takeover_every)
            self._fetcher = Fetcher(self.config.core.web)
            counts = f"{plural(news.stats().articles, 'article')}, {plural(len(self.config.core.feeds), 'feed')}"
            if app is None:
                log.info(
                    "no Telegram bot token: serving as a feeds-only ingestion worker from %s: %s",
                    self.config.core.data_path,
                    counts,
                )
            else:
                log.info("serving (%s) from %s: %s", self.mode, self.config.core.data_path, counts)
            asyncio.run(self._serve(app))
        finally:
            if self._refresher is not None:
                self._refresher.stop()
            if self._fetcher is not None:
                self._fetcher.close()
            if self._telegram is not None:
                self._telegram.release()
            news.close()
        if self._telegram is not None and self._telegram.fatal is not None:
            raise self._telegram.fatal
        log.info("stopped")

    async def _serve(self, app: BotApp | None) -> None:
        """Run until SIGTERM/SIGINT: the feeds, the refresher and the health checks at once, and
        the bot as soon as Telegram answers (PTB's start and stop order)."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await self._start()
        try:
            if app is not None and self._telegram is not None:
                self._telegram.start(app, stop)
            await stop.wait()
        finally:
            if app is not None and self._telegram is not None:
                await self._telegram.close(app)
            await self._post_stop()
            if app is not None and self._telegram is not None:
                await self._telegram.shutdown(app)

    async def _start(self) -> None:
        """Start the scheduler, the refresher, the health server and the watchdog."""
        assert self._news is not None and self._fetcher is not None
        self._stopping = asyncio.Event()
        if self.config.core.feeds:
            feeds = self.feeds.run(self._news, self._fetcher, self._news.coordinator(), self._stopping)
            self._feed_task = asyncio.create_task(feeds, name="feeds")
        self._refresher = Refresher(self._news, self.refresh_every).start()
        self._spawn(self._announce_ready(), "ready")
        if self.config.serve.health_port:
            serve = self.config.serve
            self._health = start_health_server(self.health, serve.health_listen, serve.health_port)

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coroutine, name=name))

    async def _post_stop(self) -> None:
        """Stop the feeds (letting an ingest finish its batch), then the helpers."""
        sd_notify("STOPPING=1")
        self.feeds.stop_thread.set()
        if self._stopping is not None:
            self._stopping.set()
        if self._feed_task is not None:
            try:
                await asyncio.wait_for(self._feed_task, STOP_WAIT)
            except TimeoutError:
                log.warning("a feed ingest did not finish within %.0f s of the stop signal", STOP_WAIT)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._refresher is not None:
            await asyncio.to_thread(self._refresher.stop)
        if self._health is not None:
            self._health.stop()

    async def _announce_ready(self) -> None:
        app = self._app
        # Ready once the bot receives updates, or Telegram has been found unreachable (the feeds
        # run meanwhile; systemd must not kill a service that waits for the network), or at once
        # without a bot.
        while app is not None and not (
            (app.running and (app.updater is None or app.updater.running or self.role == "standby"))
            or self.link.reason is not None
        ):
            await asyncio.sleep(0.05)
        what = "feeds only" if app is None else self.mode
        status = f"serving ({what}), {plural(len(self.config.core.feeds), 'feed')}"
        if app is not None and self.link.down:
            status += "; Telegram cannot be reached yet, retrying"
        sd_notify(f"READY=1\nSTATUS={status}")
        log.info("ready")
        interval = watchdog_interval()
        if interval is not None:
            self._spawn(self._watchdog(interval), "watchdog")

    async def _watchdog(self, interval: float) -> None:
        while True:
            ok, problem = self.healthy()
            if ok:
                sd_notify("WATCHDOG=1")
            else:
                # No ping: systemd restarts the service when WatchdogSec runs out.
                log.error("unhealthy, not pinging the watchdog: %s", problem)
            await asyncio.sleep(interval)

    # -- health ----------------------------------------------------------------------------------
    def healthy(self) -> tuple[bool, str | None]:
        """Return whether the bot and the scheduler are alive, and what is wrong if not.

        Telegram being unreachable is not a fault of the process (a restart would not help, and
        the feeds go on): /healthz reports it, the watchdog is still pinged.
        """
        if self._app is not None and self._telegram is not None:
            problem = self._telegram.problem(self._app)
            if problem is not None:
                return False, problem
        task = self._feed_task
        if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
            return False, f"the feed scheduler stopped: {task.exception()!r}"
        return True, None

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """Return the health verdict and a JSON-ready report for /healthz."""
        ok, problem = self.healthy()
        assert self._news is not None
        try:
            stats = await asyncio.to_thread(self._news.stats)
        except NewsqaError as exc:
            # The bot runs; its store does not answer (a database restart): not ready, and a
            # restart of the bot would not help, so the watchdog is not told.
            stats = None
            ok, problem = False, problem or str(exc)
        if self._app is not None and (unreachable := self.link.problem()) is not None:
            ok, problem = False, problem or unreachable
        feeds = [
            {
                "url": s.feed.url,
                "polls": s.polls,
                "failures": s.failures,
                "last_ok": _iso(s.last_ok),
                "last_error": s.last_error,
                "polled_elsewhere": s.elsewhere,
            }
            for s in self.schedule.feeds
        ]
        body: dict[str, Any] = {
            "status": "ok" if ok else "failing",
            "problem": problem,
            "mode": self.mode,
            "role": self.role,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 1),
            "articles": stats.articles if stats else None,
            "passages": stats.passages if stats else None,
            "updated_at": stats.updated_at.isoformat() if stats and stats.updated_at else None,
            "feeds": feeds,
            "telegram": self.link.report() if self._app is not None else {"state": "off"},
        }
        return ok, body


def _iso(wall: float | None) -> str | None:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds") if wall else None


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def run_service(config: AppConfig, *, mode: str | None = None, verbose: int = 0) -> None:
    """Configure logging and run the service until SIGTERM or SIGINT."""
    # onnxruntime (which sentence-transformers imports) otherwise sends usage telemetry to
    # Microsoft; a news bot has no business phoning home. Set before the model is loaded.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    level = ["", "INFO", "DEBUG"][min(verbose, 2)] or config.log.level
    setup_logging(level, json_lines=None)
    Service(config, mode=mode).run()
