"""Whether Telegram can be reached: every Bot API request reports to one state, logged once per change.

``newsqa serve`` keeps running while Telegram cannot be reached (a wrong ``base_url``, a network
outage at boot or later): feeds are still polled, ``/healthz`` says what is wrong, and the bot
connects as soon as the Bot API answers again. The state is fed by the requests themselves
(:class:`WatchedRequest`), so an outage seen by long polling, by a reply or by the start-up
calls is one outage, logged when it starts and when it ends, not at every retry.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from telegram.error import NetworkError
from telegram.request import HTTPXRequest

__all__ = ["TelegramLink", "WatchedRequest", "backoff_delays"]

log = logging.getLogger(__name__)

# A first retry after 1 s, then twice as long each time, never more than a minute apart.
FIRST_RETRY = 1.0
MAX_RETRY = 60.0


def backoff_delays(first: float = FIRST_RETRY, most: float = MAX_RETRY) -> Any:
    """Yield the waits between attempts: first, 2 x first, ... up to ``most``."""
    delay = first
    while True:
        yield delay
        delay = min(most, delay * 2)


@dataclass
class _State:
    name: str  # "connecting" (never connected yet), "connected", "unreachable"
    since: float  # wall-clock time of the change
    reason: str | None = None


class TelegramLink:
    """The bot's connection to the Bot API: connecting, connected or unreachable, and since when."""

    def __init__(self, token: str = "") -> None:
        self._token = token
        self._state = _State("connecting", time.time())
        self.ever_connected = False

    @property
    def state(self) -> str:
        """Return "connecting" (never connected yet), "connected" or "unreachable"."""
        return self._state.name

    @property
    def reason(self) -> str | None:
        """Return why Telegram cannot be reached, None when it can."""
        return self._state.reason

    @property
    def since(self) -> float:
        """Return the wall-clock time of the last change."""
        return self._state.since

    @property
    def down(self) -> bool:
        """Return True until the first success, and during an outage."""
        return self._state.name != "connected"

    def _clean(self, text: str) -> str:
        text = " ".join(text.split()) or "no answer"
        return text.replace(self._token, "<token>") if self._token else text

    def failed(self, reason: str) -> None:
        """Record a request that found no Bot API; log it when this starts an outage."""
        reason = self._clean(reason)
        if self._state.name == "connected":
            self._state = _State("unreachable", time.time(), reason)
            log.warning("Telegram cannot be reached: %s; retrying", reason)
        elif self._state.reason is None:
            self._state = _State(self._state.name, self._state.since, reason)
            log.warning("Telegram cannot be reached yet: %s; retrying with backoff", reason)
        elif self._state.reason != reason:
            self._state.reason = reason  # the same outage, said another way: no new line

    def succeeded(self) -> None:
        """Record a request the Bot API answered; log it when this ends an outage."""
        if self._state.name == "connected":
            return
        was = self._state
        self._state = _State("connected", time.time())
        if was.name == "unreachable":
            log.info("Telegram reachable again after %.0f s", self._state.since - was.since)
        else:
            log.info("connected to Telegram")
        self.ever_connected = True

    def report(self) -> dict[str, Any]:
        """Return the state for /healthz."""
        return {
            "state": self._state.name,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._state.since)),
            "error": self._state.reason,
            "ever_connected": self.ever_connected,
        }

    def problem(self) -> str | None:
        """Return what /healthz says while Telegram cannot be reached, else None."""
        if not self.down:
            return None
        reason = self._state.reason or "no answer yet"
        if not self.ever_connected:
            return f"never connected to Telegram: {reason}"
        return f"Telegram unreachable for {time.time() - self._state.since:.0f} s: {reason}"


class WatchedRequest(HTTPXRequest):
    """PTB's HTTPX transport, telling a :class:`TelegramLink` whether each request reached the Bot API."""

    def __init__(self, link: TelegramLink, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._link = link

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        """Send one request; a network failure or a 5xx from a gateway counts as unreachable."""
        try:
            status, payload = await super().do_request(*args, **kwargs)
        except NetworkError as exc:  # TimedOut included
            self._link.failed(exc.message)
            raise
        if status >= 500:
            self._link.failed(f"HTTP {status} from the Bot API")
        else:
            self._link.succeeded()
        return status, payload
