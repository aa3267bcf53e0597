"""The Telegram side of ``newsqa serve``: connecting (with backoff while Telegram cannot be reached),
webhook or long polling, and the poller election among replicas.

Telegram is a network dependency, not a part of the process: when the Bot API cannot be reached
(a wrong ``base_url``, an outage at boot or later) the service stays up, retries with backoff
(``bot/telegram/link.py`` logs each change once) and connects as soon as it answers. In polling
mode only the replica holding the poller lock long-polls (a second poller would get 409
Conflict); the others stand by and try to take the lock every ``serve.takeover_every``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import secrets
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bot.config import AppConfig
from bot.telegram.link import TelegramLink, backoff_delays
from retrieval.errors import ConfigError, NewsqaError
from retrieval.storage.coordination import Coordinator, Lease

if TYPE_CHECKING:
    from bot.telegram.app import BotApp

__all__ = ["TelegramSide", "one_line", "webhook_secret"]

log = logging.getLogger(__name__)

_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


def one_line(exc: BaseException) -> str:
    """Return an exception's message on one line."""
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def webhook_secret(config: AppConfig) -> str:
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


class TelegramSide:
    """The bot's connection to Telegram and this replica's role: webhook, starting, poller, standby."""

    def __init__(
        self, config: AppConfig, mode: str, link: TelegramLink, coordinator: Coordinator, takeover_every: float
    ) -> None:
        self.config = config
        self.mode = mode
        self.link = link
        self.coordinator = coordinator
        self.takeover_every = takeover_every
        # "webhook"; in polling mode "starting", then "poller" or "standby".
        self.role = "webhook" if mode == "webhook" else "starting"
        self.fatal: NewsqaError | None = None
        self.connect_task: asyncio.Task[None] | None = None
        self.lead_task: asyncio.Task[None] | None = None
        self._lease: Lease | None = None

    def start(self, app: BotApp, stop: asyncio.Event) -> None:
        """Connect in the background; ``stop`` is set when the token is refused (``fatal``)."""
        self.connect_task = asyncio.create_task(self._connect(app, stop), name="telegram")

    async def close(self, app: BotApp) -> None:
        """Stop receiving updates and the bot; a failure (Telegram gone) is one log line."""
        for task in (self.connect_task, self.lead_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await _quietly("stop receiving updates", _stop_updater(app))
        if app.running:
            await _quietly("stop the bot", app.stop())

    async def shutdown(self, app: BotApp) -> None:
        """Shut the bot down (after the rest of the service stopped)."""
        await _quietly("shut the bot down", app.shutdown())

    async def _connect(self, app: BotApp, stop: asyncio.Event) -> None:
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
                self.fatal = ConfigError(REFUSED_BY_TELEGRAM)
                stop.set()
                return
            except NetworkError as exc:  # TimedOut too; already logged once by the link
                self.link.failed(one_line(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), next(delays))
        if stop.is_set():
            return
        if self.mode == "polling":
            self.lead_task = asyncio.create_task(self._lead_polling(app, stop), name="poller")

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
            self.link.failed(one_line(exc))
        else:
            log.warning("polling Telegram: %s", one_line(exc))

    async def _lead_polling(self, app: BotApp, stop: asyncio.Event) -> None:
        """Long-poll while holding the poller lock; otherwise stand by and try to take it."""
        # Named for the bot, so bots sharing a database do not wait for each other.
        name = "telegram poller " + hashlib.sha256(app.bot.token.encode()).hexdigest()[:16]
        unreachable = False  # warned once per outage
        while not stop.is_set():
            lease = self._lease
            if lease is None or not await asyncio.to_thread(lease.alive):
                self.release()
                try:
                    self._lease = await asyncio.to_thread(self.coordinator.try_lock, name)
                except NewsqaError as exc:
                    # Nobody can take the role while the store is unreachable: carry on as before.
                    log.log(logging.DEBUG if unreachable else logging.WARNING, "cannot check the poller lock: %s", exc)
                    unreachable = True
                else:
                    unreachable = False
                    await self._take_role(app, "poller" if self._lease is not None else "standby")
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
                    self.link.failed(one_line(exc))
                else:
                    log.warning("cannot start polling Telegram: %s", one_line(exc))
                self.release()
                return
            log.info("polling Telegram (this replica holds the poller lock)")
        elif role == "standby" and updater.running:
            log.warning("another replica took over polling Telegram; standing by")
            await updater.stop()
        elif role == "standby" and self.role != "standby":
            log.info("standing by: another replica polls Telegram")
        self.role = role

    def release(self) -> None:
        """Let the poller lock go, if held."""
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.release()

    def problem(self, app: BotApp) -> str | None:
        """Return what is wrong with the bot's side, if anything (Telegram being down is not)."""
        if not self.link.down:
            if not app.running:
                return "the bot is not running"
            if app.updater is not None and not app.updater.running and self.role not in ("standby", "starting"):
                return "the bot is not receiving updates"
        for task, what in ((self.connect_task, "connecting to Telegram"), (self.lead_task, "the poller election")):
            if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
                return f"{what} stopped: {task.exception()!r}"
        return None


async def _quietly(what: str, step: Coroutine[Any, Any, Any]) -> None:
    """Run one shutdown step; a failure (Telegram gone) is one log line, not a traceback."""
    try:
        await step
    except Exception as exc:
        log.warning("could not %s: %s", what, one_line(exc))


async def _stop_updater(app: BotApp) -> None:
    if app.updater is not None and app.updater.running:
        await app.updater.stop()
