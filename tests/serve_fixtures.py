"""Running ``newsqa serve`` as a real process in tests: its config, its health, asking through the fake.

Shared by the single-service tests (test_service_process) and the replica tests (test_replicas).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fake_bot_api import FakeBotApi
from tests.telegram_fixtures import TOKEN
from tests.web_fixtures import STORIES, Item, Story, WebSite


def newsqa_command() -> list[str]:
    """Return the argv that starts the installed ``newsqa`` entry point."""
    script = Path(sys.executable).with_name("newsqa")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(every)


def links(message: dict[str, Any]) -> list[str]:
    """Return the link targets of a message the fake recorded."""
    return [e["url"] for e in message.get("entities", []) if e.get("type") == "text_link"]


class Notifications:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET, read continuously."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.received: list[str] = []
        self._open = True
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while self._open:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.received.extend(data.decode().splitlines())

    def drain(self) -> list[str]:
        """Return every state line received so far."""
        return list(self.received)

    def close(self) -> None:
        self._open = False
        self._thread.join(timeout=2)
        self.sock.close()


class ServeProcess:
    """``newsqa serve`` started through its entry point, talking only to loopback fakes."""

    def __init__(self, tmp: Path, api: FakeBotApi, config_text: str, extra_env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.config = tmp / "config.toml"
        self.config.write_text(config_text, encoding="utf-8")
        proxy = f"http://127.0.0.1:{api.port}"
        self.env = {
            **os.environ,
            "NEWSQA_TELEGRAM_TOKEN": TOKEN,
            "NEWSQA_TELEGRAM_BASE_URL": api.base_url,
            # Anything that tries another host through a proxy reaches the fake, which records it.
            "HTTP_PROXY": proxy,
            "HTTPS_PROXY": proxy,
            "ALL_PROXY": proxy,
            "NO_PROXY": "127.0.0.1,localhost",
            "HF_HUB_OFFLINE": "1",
            "NEWSQA_CONFIG": str(self.config),
            **(extra_env or {}),
        }
        self.runs = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def stderr_path(self) -> Path:
        return self.tmp / f"serve-{self.runs}.log"

    def start(self) -> ServeProcess:
        self.runs += 1
        with self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [*newsqa_command(), "serve"], env=self.env, stdout=subprocess.DEVNULL, stderr=err
            )
        return self

    def stop(self, sig: int, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def run_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*newsqa_command(), *args], env=self.env, capture_output=True, text=True, timeout=120, check=False
        )


def health(port: int, timeout: float = 2.0) -> dict[str, Any] | None:
    """Return the /healthz body, None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as response:
            body: dict[str, Any] = json.load(response)
            return body
    except urllib.error.HTTPError as exc:  # 503: unhealthy, with the same JSON body
        failing: dict[str, Any] = json.load(exc)
        return failing
    except OSError:
        return None


EVERY = 2.0  # the feed's polling interval in these tests, seconds


def service_config(data: Path, feed_url: str, health_port: int, every: float = EVERY) -> str:
    return f"""data_dir = "{data}"

[web]
allow_private_networks = true
timeout = 5.0
backoff = 0.1

[serve]
refresh_every = "1s"
health_port = {health_port}

[log]
level = "INFO"

[[feeds]]
url = "{feed_url}"
every = "{every:g}s"
source = "Coast Gazette"
"""


def ask(api: FakeBotApi, user_id: int, question: str, timeout: float = 30) -> dict[str, Any]:
    """Ask as a user in a private chat; return the bot's reply."""
    user = api.user(user_id)
    chat = api.private_chat(user)
    before = len(api.sent(chat["id"]))
    api.send_text(chat, user, question)
    return api.wait_sent(chat["id"], count=before + 1, timeout=timeout)[before]


def count_articles(data: Path) -> int:
    """Return the number of stored articles, read as a separate reader would."""
    try:
        with sqlite3.connect(f"file:{data / 'newsqa.sqlite3'}?mode=ro", uri=True, timeout=5) as con:
            return int(con.execute("SELECT COUNT(*) FROM articles").fetchone()[0])
    except sqlite3.Error:
        return 0


def feed_of(site: WebSite, stories: list[Story]) -> str:
    for story in stories:
        site.put_story(story)
    items = [Item(s, site.url(f"/news/{s.slug}.html")) for s in stories]
    return site.put_feed("/feed.rss", items, title="Coast Gazette")


def many_stories(count: int) -> list[Story]:
    """Return ``count`` short synthetic stories, each with its own numbers."""
    base = STORIES[0].published
    return [
        Story(
            f"town-{n}",
            f"Town {n} opens its new library",
            f"Library news from town {n}.",
            (
                f"The new library of town {n} opened on Saturday with {n * 37 + 11} books on its "
                f"shelves and a reading room named after the town's first teacher, Ada Number {n}.",
                f"The mayor of town {n} said the building cost {n + 3} million crowns and had been "
                f"paid for by a tax on the harbour, which carried {n * 5 + 2} ships last year.",
                f"Children from the {n % 9 + 2} schools of town {n} were the first to borrow books, "
                "and the librarians said the most popular title was an atlas of the coast.",
            ),
            base,
        )
        for n in range(1, count + 1)
    ]


def allow_set_webhook(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the fake's parameter checks accept setWebhook (the fake knows polling only)."""
    import tests.fake_bot_api_checks as checks

    schema = {"url": "str", "secret_token": "str", "allowed_updates": "json", "max_connections": "int"}
    monkeypatch.setitem(checks.METHODS, "setwebhook", {**schema, "drop_pending_updates": "bool", "ip_address": "str"})


class WebhookFakeApi(FakeBotApi):
    """The fake Bot API, also accepting setWebhook (recorded, not acted on)."""

    webhook: dict[str, Any] | None = None

    def _api_setwebhook(self, params: dict[str, Any], call: Any) -> bool:
        self.webhook = params
        return True


def post_update(port: int, path: str, secret: str, update: dict[str, Any]) -> int:
    """POST an update to a webhook server as Telegram would; return the HTTP status (0: no answer)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(update).encode(),
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0
