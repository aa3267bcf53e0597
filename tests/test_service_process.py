"""`newsqa serve` as a real process: feeds on a loopback site, the fake Bot API, signals, crashes.

Each test starts the service through its entry point with an empty data directory; the model
load makes every start cost a few seconds, so there are few starts.
"""

from __future__ import annotations

import json
import os
import signal
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

from tests.conftest import Databases, storage_env
from tests.fake_bot_api import FakeBotApi
from tests.telegram_fixtures import TOKEN, fake_api_fixture  # noqa: F401
from tests.web_fixtures import STORIES, Item, Story, WebSite, site_fixture  # noqa: F401


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


def health(port: int) -> dict[str, Any] | None:
    """Return the /healthz body, None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            body: dict[str, Any] = json.load(response)
            return body
    except OSError:
        return None


pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

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


def test_serve_ingests_a_feed_answers_from_it_picks_up_new_entries_and_stops_cleanly(
    fake_api: FakeBotApi, site: WebSite, tmp_path: Path, databases: Databases | None
) -> None:
    data = tmp_path / "data"
    port = free_port()
    notify = Notifications(tmp_path / "notify.sock")
    feed_url = site.url("/feed.rss")  # not there yet: the first polls fail
    service = ServeProcess(
        tmp_path,
        fake_api,
        service_config(data, feed_url, port),
        {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000", **storage_env(databases)},
    ).start()
    try:
        fake_api.wait_polling(timeout=90)
        wait_until(lambda: "READY=1" in notify.drain(), 30, "READY=1")
        # Before any feed has landed the bot says so kindly.
        reply = ask(fake_api, 601, "How many steps does the Grey Point lighthouse have?")
        assert "haven't read any articles yet" in reply["text"]
        # The broken feed is retried: once it appears it is read without a restart.
        feed_of(site, STORIES[:2])
        wait_until(lambda: (health(port) or {}).get("articles") == 2, 30, "the feed's two articles")
        reply = ask(fake_api, 601, "How many steps does the Grey Point lighthouse have?")
        assert "212 steps" in reply["text"]
        page = site.url("/news/lighthouse.html")
        assert any(link.startswith(page + "#:~:text=") for link in links(reply)), links(reply)
        # A new entry: answered within one polling interval (plus the time to read it).
        started = time.monotonic()
        feed_of(site, [*STORIES[:2], STORIES[3]])
        wait_until(lambda: (health(port) or {}).get("articles") == 3, EVERY + 15, "the new entry")
        # The store shows the entry as soon as it is committed; answers follow once the writer
        # has saved the index files and the bot has moved to them.
        replies: list[dict[str, Any]] = []

        def answered() -> bool:
            replies.append(ask(fake_api, 602, "How many passengers were stranded by the ferry strike?"))
            return "3,400 passengers" in replies[-1]["text"]

        wait_until(answered, EVERY + 15, "an answer from the new entry")
        reply = replies[-1]
        elapsed = time.monotonic() - started
        assert "3,400 passengers" in reply["text"], reply["text"]
        assert any(link.startswith(site.url("/news/ferry-strike.html")) for link in links(reply))
        print(f"new entry answered {elapsed:.1f} s after it appeared (interval {EVERY:g} s)")
        # Unchanged polls are conditional and cheap.
        wait_until(lambda: len(site.hits("/feed.rss")) >= 5, 3 * EVERY + 5, "more polls")
        unchanged = [r for r in site.hits("/feed.rss") if r.status == 304]
        assert unchanged and all("If-None-Match" in r.headers for r in unchanged)
        body = health(port)
        assert body is not None and body["status"] == "ok" and body["mode"] == "polling"
        [feed] = body["feeds"]
        assert feed["url"] == feed_url and feed["last_error"] is None and feed["polls"] >= 4
        # A question in flight when SIGTERM arrives is still answered, and its update confirmed.
        user = fake_api.user(603)
        fake_api.send_text(fake_api.private_chat(user), user, "What did the growers do about the frost?")
        time.sleep(0.3)
        assert service.stop(signal.SIGTERM) == 0
        assert len(fake_api.sent(603)) == 1
        assert fake_api.pending_updates() == 0
    finally:
        service.kill()
    states = notify.drain()
    notify.close()
    assert states.count("WATCHDOG=1") >= 2 and "STOPPING=1" in states
    log = service.log()
    lines = [line for line in log.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # not a terminal: JSON lines only
    assert any(r["level"] == "WARNING" and "HTTP 404" in r["message"] for r in records)
    assert not any(r["level"] in ("ERROR", "CRITICAL") for r in records), [r for r in records if r["level"] == "ERROR"]
    assert TOKEN.split(":")[1] not in log
    assert fake_api.refusals() == []
    check = service.run_cli("check")
    assert check.returncode == 0 and "ok: 3 articles" in check.stdout, check.stderr


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


def test_kill_9_during_a_feed_ingest_loses_and_duplicates_nothing(
    fake_api: FakeBotApi, site: WebSite, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    port = free_port()
    stories = many_stories(100)  # two ingest batches of at most 64 articles
    feed_of(site, stories)
    service = ServeProcess(tmp_path, fake_api, service_config(data, site.url("/feed.rss"), port, every=3600))
    service.start()
    try:
        # Kill as soon as the first batch is committed, while the second is being read and embedded.
        wait_until(lambda: count_articles(data) > 0, 120, "the first committed batch", every=0.05)
        service.process.kill()  # type: ignore[union-attr]
        service.process.wait()  # type: ignore[union-attr]
        at_kill = count_articles(data)
        assert 0 < at_kill < 100, at_kill
        service.start()
        wait_until(lambda: count_articles(data) == 100, 120, "all 100 articles after the restart")
        body = wait_until(lambda: health(port), 10, "health")
        assert body["articles"] == 100
        assert service.stop(signal.SIGTERM) == 0
    finally:
        service.kill()
    check = service.run_cli("check")
    assert check.returncode == 0 and "ok: 100 articles" in check.stdout, check.stdout + check.stderr
    with sqlite3.connect(data / "newsqa.sqlite3") as con:
        duplicated = con.execute("SELECT url FROM articles GROUP BY url HAVING COUNT(*) > 1").fetchall()
        empty = con.execute(
            "SELECT COUNT(*) FROM articles a WHERE NOT EXISTS (SELECT 1 FROM passages p WHERE p.article_id = a.id)"
        ).fetchone()[0]
        urls = {row[0] for row in con.execute("SELECT url FROM articles")}
    assert duplicated == [] and empty == 0
    assert urls == {site.url(f"/news/{s.slug}.html") for s in stories}
    print(f"killed with {at_kill} of 100 articles committed; after restart: 100, check ok")


class WebhookFakeApi(FakeBotApi):
    """The fake Bot API, also accepting setWebhook (recorded, not acted on)."""

    webhook: dict[str, Any] | None = None

    def _api_setwebhook(self, params: dict[str, Any], call: Any) -> bool:
        self.webhook = params
        return True


def test_serve_in_webhook_mode_checks_the_secret_answers_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, databases: Databases | None
) -> None:
    import tests.fake_bot_api_checks as checks

    schema = {"url": "str", "secret_token": "str", "allowed_updates": "json", "max_connections": "int"}
    monkeypatch.setitem(checks.METHODS, "setwebhook", {**schema, "drop_pending_updates": "bool", "ip_address": "str"})
    port = free_port()
    config = (
        f'data_dir = "{tmp_path / "data"}"\n[serve]\nmode = "webhook"\n'
        f'webhook_url = "https://bot.example.org/tg/hook"\nport = {port}\n'
    )
    with WebhookFakeApi(TOKEN) as api:
        service = ServeProcess(
            tmp_path, api, config, {"NEWSQA_SERVE_SECRET_TOKEN": "s3cret_abc", **storage_env(databases)}
        )
        assert service.run_cli("ingest", str(Path(__file__).parents[1] / "bot" / "sample" / "articles")).returncode == 0
        service.start()
        try:
            hook = wait_until(lambda: api.webhook, 90, "setWebhook")
            assert hook["url"] == "https://bot.example.org/tg/hook" and hook["secret_token"] == "s3cret_abc"
            user = api.user(701)
            chat = api.private_chat(user)
            update = {
                "update_id": 900001,
                "message": {
                    "message_id": 1,
                    "date": int(time.time()),
                    "chat": chat,
                    "from": user,
                    "text": "Who won the cup final?",
                },
            }

            def post(secret: str) -> int:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/tg/hook",
                    data=json.dumps(update).encode(),
                    headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret},
                )
                try:
                    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
                        return int(response.status)
                except urllib.error.HTTPError as exc:
                    return exc.code
                except OSError:
                    return 0

            wait_until(lambda: post("wrong") == 403, 30, "the webhook server to refuse a wrong secret")
            assert post("s3cret_abc") == 200
            [answer] = api.wait_sent(chat["id"], timeout=30)
            assert "Harbour Town won the National Cup" in answer["text"]
            assert service.stop(signal.SIGTERM) == 0
        finally:
            service.kill()
        log = service.log()
        assert "s3cret_abc" not in log and TOKEN.split(":")[1] not in log and "Traceback" not in log
