"""``newsqa serve``: the Telegram bot and the feed scheduler in one process, until SIGTERM/SIGINT.

The bot answers from a reader index; feeds are polled on their schedules in a worker thread
that writes through a separate writer index and then refreshes the reader, so answers never
see a half-updated index. Another process's writes (``newsqa ingest``) are picked up every
``serve.refresh_every``.

Several replicas may serve one store (PostgreSQL, or one machine's data directory). Each feed
is polled by one of them at a time, under a lock named for the feed, and not again by another
until its interval has passed since the last complete poll. In webhook mode every replica
answers what reaches it; in polling mode only the replica holding the poller lock long-polls
Telegram (a second poller would get 409 Conflict) and the others stand by, trying to take the
lock every ``serve.takeover_every``; it goes free when the poller dies.

Telegram is a network dependency, not a part of the process: when the Bot API cannot be reached
(a wrong ``base_url``, an outage at boot or later) the service stays up, polls its feeds, retries
Telegram with backoff (bot/telegram/link.py logs each change once) and connects as soon as it
answers. Without a bot token but with ``[[feeds]]`` it runs as a feeds-only ingestion worker
(role ``feeds``).

Health, both ways: under systemd (``Type=notify``) the service sends READY=1 once it is
receiving updates (or has found Telegram unreachable, or runs feeds only), WATCHDOG=1 while the
event loop runs and the updater and the scheduler are alive, and STOPPING=1 on the way out; with
``serve.health_port`` it also answers ``GET /healthz`` (200 or 503 with a JSON body), which
container supervisors can poll; it says 503 while Telegram cannot be reached, with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bot.telegram.link import TelegramLink, backoff_delays
from retrieval.config import Config, FeedConfig
from retrieval.coordination import Coordinator, Lease, coordinator_for
from retrieval.errors import ConfigError, NewsqaError
from retrieval.schedule import FeedSchedule, FeedStatus, parse_every
from retrieval.wording import plural

if TYPE_CHECKING:
    from tornado.httpserver import HTTPServer

    from bot.telegram.app import BotApp
    from retrieval.newsindex import IngestReport, NewsIndex
    from retrieval.web import Fetcher

__all__ = ["JsonFormatter", "Service", "run_service", "sd_notify", "setup_service_logging"]

log = logging.getLogger(__name__)

STOP_WAIT = 60.0  # seconds a feed ingest in progress may take to finish its batch on stop
# A feed whose last complete poll (by any replica) is younger than this share of its interval
# is not polled again yet; below 1 so that replicas' clocks and schedules drifting apart never
# stretch a feed's interval to two.
ELSEWHERE_SHARE = 0.8
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def setup_service_logging(level: str, *, json_lines: bool | None = None) -> None:
    """Log to stderr at ``level``: JSON lines unless stderr is a terminal."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ConfigError(f"log.level must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    handler = logging.StreamHandler(sys.stderr)
    if json_lines if json_lines is not None else not sys.stderr.isatty():
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # httpx at INFO writes request URLs, and the Bot API's carry the token.
    for noisy in ("httpx", "httpcore", "sentence_transformers", "transformers", "faiss", "bm25s"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    for chatty in ("apscheduler", "tornado.access"):
        logging.getLogger(chatty).setLevel(max(numeric, logging.WARNING))


def sd_notify(message: str) -> bool:
    """Send a state line to systemd's notify socket; return False when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            # Never block the event loop: a receiver that stopped reading must not stall the bot.
            sock.setblocking(False)
            sock.connect(address)
            sock.send(message.encode("utf-8"))
    except OSError as exc:
        log.warning("cannot notify systemd: %s", exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Return how often to send WATCHDOG=1 (half systemd's WatchdogSec), None if not asked."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


def webhook_secret(config: Config) -> str:
    """Return the webhook secret: $NEWSQA_SERVE_SECRET_TOKEN, the secret file, else a random one."""
    value = os.environ.get("NEWSQA_SERVE_SECRET_TOKEN", "").strip()
    path = config.serve.secret_token_file
    if not value and path:
        try:
            value = Path(path).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read serve.secret_token_file {path}: {exc.strerror}") from None
    if not value:
        return secrets.token_urlsafe(32)
    if not _SECRET.fullmatch(value):
        raise ConfigError("the webhook secret token may hold only A-Z, a-z, 0-9, _ and -, 1-256 characters")
    return value


class Service:
    """The bot, the feed scheduler, the index refresher and the health checks of one process."""

    def __init__(self, config: Config, *, mode: str | None = None) -> None:
        self.config = config
        self.mode = mode or config.serve.mode
        if self.mode not in ("polling", "webhook"):
            raise ConfigError(f'serve.mode must be "polling" or "webhook", got {self.mode!r}')
        token = config.telegram_token()
        # No bot token but feeds: a feeds-only ingestion worker (beside webhook replicas, say).
        self.feeds_only = token is None and bool(config.feeds)
        if self.mode == "webhook" and not config.serve.webhook_url and not self.feeds_only:
            raise ConfigError("webhook mode needs serve.webhook_url (the public https URL)")
        if token is None and not config.feeds:
            raise ConfigError(
                "no Telegram bot token: set NEWSQA_TELEGRAM_TOKEN or telegram.token_file (the token comes from "
                "@BotFather), or list [[feeds]] in the config to run serve as a feeds-only ingestion worker"
            )
        refuse_unfetchable_feeds(config)
        self.refresh_every = parse_every(config.serve.refresh_every, "serve.refresh_every")
        self.takeover_every = parse_every(config.serve.takeover_every, "serve.takeover_every")
        # "feeds" without a bot; "webhook"; in polling mode "starting", then "poller" or "standby".
        self.role = "feeds" if self.feeds_only else "webhook" if self.mode == "webhook" else "starting"
        self.link = TelegramLink(token.reveal() if token is not None else "")
        self._fatal: NewsqaError | None = None
        self._telegram_task: asyncio.Task[None] | None = None
        self.schedule = FeedSchedule.of(config.feeds, time.monotonic())
        self.started = time.time()
        self._stop_thread = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._feed_task: asyncio.Task[None] | None = None
        self._health: HTTPServer | None = None
        self._app: BotApp | None = None
        self._index: NewsIndex | None = None
        self._fetcher: Fetcher | None = None
        self._coordinator: Coordinator | None = None
        self._poller_lease: Lease | None = None
        self._lead_task: asyncio.Task[None] | None = None

    # -- running ---------------------------------------------------------------------------------
    def run(self) -> None:
        """Open (or create) the index, load the model, and serve until a stop signal."""
        from bot.telegram.app import build_application
        from retrieval.newsindex import NewsIndex
        from retrieval.web import Fetcher

        # Until the event loop installs its own handlers, SIGTERM is a clean exit too.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        index = NewsIndex.open(self.config, create=True)
        self._index = index
        self._coordinator = coordinator_for(self.config)
        try:
            # Load the model (and the runtime's session, made on first use) now, not at the first question.
            index.encoder.embed_one("warm up")
            app = None if self.feeds_only else build_application(self.config, index, self.link)
            self._app = app
            self._fetcher = Fetcher(self.config.web)
            articles = index.stats().articles
            if app is None:
                log.info(
                    "no Telegram bot token: serving as a feeds-only ingestion worker from %s: %s, %s",
                    self.config.data_path,
                    plural(articles, "article"),
                    plural(len(self.config.feeds), "feed"),
                )
            else:
                log.info(
                    "serving (%s) from %s: %s, %s",
                    self.mode,
                    self.config.data_path,
                    plural(articles, "article"),
                    plural(len(self.config.feeds), "feed"),
                )
            asyncio.run(self._serve(app))
        finally:
            if self._fetcher is not None:
                self._fetcher.close()
            self._release_poller()
            index.close()
        if self._fatal is not None:
            raise self._fatal
        log.info("stopped")

    async def _serve(self, app: BotApp | None) -> None:
        """Run until SIGTERM/SIGINT: the feeds, the refresher and the health checks at once, and
        the bot as soon as Telegram answers (PTB's start and stop order; in polling mode long
        polling only while this replica holds the poller lock)."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await self._start()
        try:
            if app is not None:
                self._telegram_task = asyncio.create_task(self._keep_telegram(app, stop), name="telegram")
            await stop.wait()
        finally:
            for task in (self._telegram_task, self._lead_task):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            if app is not None:
                await self._quietly("stop receiving updates", _stop_updater(app))
                if app.running:
                    await self._quietly("stop the bot", app.stop())
            await self._post_stop(app)
            if app is not None:
                await self._quietly("shut the bot down", app.shutdown())

    async def _quietly(self, what: str, step: Coroutine[Any, Any, Any]) -> None:
        """Run one shutdown step; a failure (Telegram gone) is one log line, not a traceback."""
        try:
            await step
        except Exception as exc:
            log.warning("could not %s: %s", what, _one_line(exc))

    async def _keep_telegram(self, app: BotApp, stop: asyncio.Event) -> None:
        """Connect the bot to Telegram, retrying with backoff while it cannot be reached; then run it."""
        from telegram.error import InvalidToken, NetworkError

        from bot.telegram.app import REFUSED_BY_TELEGRAM

        delays = backoff_delays()
        initialized = commands = False
        while not stop.is_set():
            try:
                if not initialized:
                    await app.initialize()  # getMe
                    initialized = True
                if not commands and app.post_init is not None:
                    await app.post_init(app)  # the command menus
                    commands = True
                if self.mode == "webhook":
                    await self._start_webhook(app)
                await app.start()
                break
            except InvalidToken:
                # The message quotes the token itself: never shown.
                self._fatal = ConfigError(REFUSED_BY_TELEGRAM)
                stop.set()
                return
            except NetworkError as exc:  # TimedOut too; already logged once by the link
                self.link.failed(_one_line(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), next(delays))
        if stop.is_set():
            return
        if self.mode == "polling":
            self._lead_task = asyncio.create_task(self._lead_polling(app, stop), name="poller")

    async def _start_webhook(self, app: BotApp) -> None:
        from bot.telegram.app import ALLOWED_UPDATES

        serve = self.config.serve
        updater = app.updater
        assert updater is not None
        if not updater.running:
            await updater.start_webhook(
                listen=serve.listen,
                port=serve.port,
                url_path=urlsplit(serve.webhook_url).path.lstrip("/"),
                webhook_url=serve.webhook_url,
                secret_token=webhook_secret(self.config),
                allowed_updates=ALLOWED_UPDATES,
            )

    def _polling_error(self, exc: Exception) -> None:
        """PTB's polling loop failed once (it retries itself): the link logs outages, once."""
        from telegram.error import NetworkError

        if isinstance(exc, NetworkError):
            self.link.failed(_one_line(exc))
        else:
            log.warning("polling Telegram: %s", _one_line(exc))

    async def _lead_polling(self, app: BotApp, stop: asyncio.Event) -> None:
        """Long-poll while holding the poller lock; otherwise stand by and try to take it."""
        assert self._coordinator is not None
        # Named for the bot, so bots sharing a database do not wait for each other.
        name = "telegram poller " + hashlib.sha256(app.bot.token.encode()).hexdigest()[:16]
        unreachable = False  # warned once per outage
        while not stop.is_set():
            lease = self._poller_lease
            if lease is None or not await asyncio.to_thread(lease.alive):
                self._release_poller()
                try:
                    self._poller_lease = await asyncio.to_thread(self._coordinator.try_lock, name)
                except NewsqaError as exc:
                    # Nobody can take the role while the store is unreachable: carry on as before.
                    log.log(logging.DEBUG if unreachable else logging.WARNING, "cannot check the poller lock: %s", exc)
                    unreachable = True
                else:
                    unreachable = False
                    await self._take_role(app, "poller" if self._poller_lease is not None else "standby")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.takeover_every)

    async def _take_role(self, app: BotApp, role: str) -> None:
        from bot.telegram.app import ALLOWED_UPDATES

        updater = app.updater
        assert updater is not None
        if role == "poller" and not updater.running:
            try:
                await updater.start_polling(allowed_updates=ALLOWED_UPDATES, error_callback=self._polling_error)
            except Exception as exc:  # Telegram unreachable: let another replica try, retry later
                from telegram.error import NetworkError

                if isinstance(exc, NetworkError):
                    self.link.failed(_one_line(exc))
                else:
                    log.warning("cannot start polling Telegram: %s", _one_line(exc))
                self._release_poller()
                return
            log.info("polling Telegram (this replica holds the poller lock)")
        elif role == "standby" and updater.running:
            log.warning("another replica took over polling Telegram; standing by")
            await updater.stop()
        elif role == "standby" and self.role != "standby":
            log.info("standing by: another replica polls Telegram")
        self.role = role

    def _release_poller(self) -> None:
        lease, self._poller_lease = self._poller_lease, None
        if lease is not None:
            lease.release()

    async def _start(self) -> None:
        """Start the scheduler, the refresher, the health server and the watchdog (post_init)."""
        self._stopping = asyncio.Event()
        if self.config.feeds:
            self._feed_task = asyncio.create_task(self._poll_feeds(), name="feeds")
        self._spawn(self._refresh_loop(), "refresh")
        self._spawn(self._announce_ready(), "ready")
        if self.config.serve.health_port:
            self._health = _start_health_server(self)

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coroutine, name=name))

    async def _post_stop(self, _app: BotApp | None) -> None:
        """Stop the feeds (letting an ingest finish its batch), then the helpers (post_stop)."""
        sd_notify("STOPPING=1")
        self._stop_thread.set()
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
        if self._health is not None:
            self._health.stop()

    # -- the parts -------------------------------------------------------------------------------
    async def _poll_feeds(self) -> None:
        assert self._stopping is not None
        while not self._stopping.is_set():
            for status in self.schedule.due(time.monotonic()):
                if self._stopping.is_set():
                    break
                await self._poll_one(status)
            due = self.schedule.next_due()
            wait = 3600.0 if due is None else max(0.05, due - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), wait)

    async def _poll_one(self, status: FeedStatus) -> None:
        url = status.feed.url
        try:
            report = await asyncio.to_thread(self._ingest_feed, status.feed, status.interval)
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

    def _ingest_feed(self, feed: FeedConfig, interval: float) -> IngestReport | float:
        """Poll one feed through a writer index, then let the bot's index see the result.

        Returns the seconds to wait instead when another replica is polling the feed or has
        polled it within most of its interval.
        """
        from retrieval.feeds import FetchCache, poll_feed
        from retrieval.newsindex import NewsIndex

        assert self._index is not None and self._fetcher is not None and self._coordinator is not None
        lease = self._coordinator.try_lock(f"feed {feed.url}")
        if lease is None:  # look again soon: if that replica dies, its poll is taken over
            return min(interval, self.takeover_every)
        try:
            writer = NewsIndex.open(self.config, encoder=self._index.encoder, create=True)
            try:
                last = FetchCache.of(writer.store).fetched_at(feed.url)
                age = (datetime.now(UTC) - last).total_seconds() if last is not None else None
                if age is not None and 0 <= age < ELSEWHERE_SHARE * interval:
                    return interval - age
                report = poll_feed(writer, feed, self._fetcher, stop=self._stop_thread)
            finally:
                writer.close()
        finally:
            lease.release()
        if report.added or report.updated:
            self._index.refresh()
        return report

    async def _refresh_loop(self) -> None:
        assert self._stopping is not None and self._index is not None
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.refresh_every)
            if self._stopping.is_set():
                return
            try:
                if await asyncio.to_thread(self._index.refresh):
                    log.info("the index changed on disk; reloaded")
            except NewsqaError as exc:
                log.warning("cannot reload the index: %s", exc)

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
        status = f"serving ({what}), {plural(len(self.config.feeds), 'feed')}"
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
        app = self._app
        if app is not None and not self.link.down:
            if not app.running:
                return False, "the bot is not running"
            if app.updater is not None and not app.updater.running and self.role not in ("standby", "starting"):
                return False, "the bot is not receiving updates"
        telegram = self._telegram_task
        if telegram is not None and telegram.done() and not telegram.cancelled() and telegram.exception() is not None:
            return False, f"connecting to Telegram stopped: {telegram.exception()!r}"
        lead = self._lead_task
        if lead is not None and lead.done() and not lead.cancelled() and lead.exception() is not None:
            return False, f"the poller election stopped: {lead.exception()!r}"
        task = self._feed_task
        if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
            return False, f"the feed scheduler stopped: {task.exception()!r}"
        return True, None

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """Return the health verdict and a JSON-ready report for /healthz."""
        ok, problem = self.healthy()
        assert self._index is not None
        try:
            stats = await asyncio.to_thread(self._index.stats)
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


def _start_health_server(service: Service) -> HTTPServer:
    """Serve GET /healthz on serve.health_listen:health_port, on the bot's event loop."""
    import tornado.web

    last_ok: list[bool] = [True]

    class HealthHandler(tornado.web.RequestHandler):
        async def get(self) -> None:
            ok, body = await service.health()
            if ok != last_ok[0]:  # the verdict's changes are logged, not every poll of a supervisor
                last_ok[0] = ok
                if ok:
                    log.info("health check ok again")
                else:
                    log.warning("health check failing: %s", body["problem"])
            self.set_status(200 if ok else 503)
            self.set_header("Content-Type", "application/json")
            self.set_header("Cache-Control", "no-store")
            self.finish(json.dumps(body))

    def log_request(handler: tornado.web.RequestHandler) -> None:
        # Tornado logs every 5xx at ERROR; a 503 from /healthz is the answer "not ready", polled
        # every few seconds during an outage, and its changes are logged above.
        if handler.request.path != "/healthz":
            request = handler.request
            log.info("%d %s %s (%s)", handler.get_status(), request.method, request.uri, request.remote_ip)

    web = tornado.web.Application([(r"/healthz", HealthHandler)], log_function=log_request)
    serve = service.config.serve
    server = web.listen(serve.health_port, address=serve.health_listen, xheaders=False)
    log.info("health checks on http://%s:%d/healthz", serve.health_listen, serve.health_port)
    return server


async def _stop_updater(app: BotApp) -> None:
    if app.updater is not None and app.updater.running:
        await app.updater.stop()


def _one_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def refuse_unfetchable_feeds(config: Config) -> None:
    """Refuse at start a feed URL that no poll could ever fetch (a private address, by default)."""
    from retrieval.web import BlockedURLError, vet_url

    for number, feed in enumerate(config.feeds, start=1):
        try:
            vet_url(feed.url, config.web)
        except BlockedURLError as exc:
            raise ConfigError(f"feed {number} can never be fetched: {exc}") from None


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def run_service(config: Config, *, mode: str | None = None, verbose: int = 0) -> None:
    """Configure logging and run the service until SIGTERM or SIGINT."""
    # onnxruntime (which sentence-transformers imports) otherwise sends usage telemetry to
    # Microsoft; a news bot has no business phoning home. Set before the model is loaded.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    level = ["", "INFO", "DEBUG"][min(verbose, 2)] or config.log.level
    setup_service_logging(level)
    Service(config, mode=mode).run()
