"""`newsqa serve` outlives Telegram: unreachable at start, and again later, it stays up and answers when it is back.

Real processes: the service through its entry point, the fake Bot API (which can go down and come
back on its port), a loopback web site with a feed.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.fake_bot_api import FakeBotApi
from tests.serve_fixtures import ServeProcess, ask, feed_of, free_port, service_config, wait_until
from tests.telegram_fixtures import TOKEN, fake_api_fixture  # noqa: F401
from tests.web_fixtures import STORIES, WebSite, site_fixture  # noqa: F401

pytestmark = [pytest.mark.timeout(420), pytest.mark.slow]

QUESTION = "How many steps does the Grey Point lighthouse have?"


def status_of(port: int) -> tuple[int, dict[str, Any]] | None:
    """Return the HTTP status and body of /healthz, None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return int(response.status), json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)
    except OSError:
        return None


def test_serve_stays_up_without_telegram_polls_feeds_and_answers_once_it_is_back(
    fake_api: FakeBotApi, site: WebSite, tmp_path: Path
) -> None:
    fake_api.go_down()  # Telegram cannot be reached when the service starts
    feed_url = feed_of(site, STORIES[:2])
    port = free_port()
    service = ServeProcess(tmp_path, fake_api, service_config(tmp_path / "data", feed_url, port)).start()
    try:
        # Up, polling its feed, and saying plainly why it is not ready.
        def waiting() -> tuple[int, dict[str, Any]] | None:
            got = status_of(port)
            return got if got is not None and got[1].get("articles") == 2 else None

        code, body = wait_until(waiting, 120, "the feed's articles while Telegram is down")
        assert code == 503 and body["status"] == "failing"
        assert body["problem"].startswith("never connected to Telegram: "), body
        assert body["telegram"]["state"] == "connecting" and body["telegram"]["ever_connected"] is False
        assert service.process is not None and service.process.poll() is None
        # Telegram comes back: the bot connects and answers, without a restart.
        fake_api.come_back()
        fake_api.wait_polling(timeout=90)
        reply = ask(fake_api, 801, QUESTION, timeout=60)
        assert "212 steps" in reply["text"]
        code, body = wait_until(lambda: (got := status_of(port)) and got[0] == 200 and got, 30, "healthy")
        assert body["telegram"]["state"] == "connected" and body["problem"] is None
        # An outage later: reported, feeds still polled, answers again once it is over.
        polls = len(site.hits("/feed.rss"))
        fake_api.go_down()
        code, body = wait_until(
            lambda: (got := status_of(port)) and got[0] == 503 and got, 60, "the outage on /healthz"
        )
        assert body["problem"].startswith("Telegram unreachable for "), body
        assert body["telegram"]["state"] == "unreachable" and body["telegram"]["ever_connected"] is True
        wait_until(lambda: len(site.hits("/feed.rss")) > polls + 1, 30, "feed polls during the outage")
        fake_api.come_back()
        reply = ask(fake_api, 802, QUESTION, timeout=90)
        assert "212 steps" in reply["text"]
        wait_until(lambda: (got := status_of(port)) and got[0] == 200, 30, "healthy again")
        started = time.monotonic()
        assert service.stop(signal.SIGTERM) == 0
        print(f"stopped {time.monotonic() - started:.1f} s after SIGTERM")
    finally:
        service.kill()
    log = service.log()
    assert "Traceback" not in log and TOKEN.split(":")[1] not in log
    records = [json.loads(line) for line in log.splitlines() if line.strip()]  # JSON lines only
    messages = [r["message"] for r in records]
    # Each change once: not reachable at start, connected, unreachable later, reachable again.
    assert sum("Telegram cannot be reached yet" in m for m in messages) == 1, messages
    assert sum(m == "connected to Telegram" for m in messages) == 1, messages
    assert sum(m.startswith("Telegram cannot be reached: ") for m in messages) == 1, messages
    assert sum(m.startswith("Telegram reachable again after") for m in messages) == 1, messages
    assert not any(r["level"] in ("ERROR", "CRITICAL") for r in records), [r for r in records if r["level"] == "ERROR"]
    assert fake_api.refusals() == []


def test_serve_without_a_reachable_telegram_exits_cleanly_on_sigterm(
    fake_api: FakeBotApi, site: WebSite, tmp_path: Path
) -> None:
    fake_api.go_down()
    port = free_port()
    service = ServeProcess(tmp_path, fake_api, service_config(tmp_path / "data", feed_of(site, STORIES[:1]), port))
    service.start()
    try:
        wait_until(lambda: (got := status_of(port)) and got[1].get("articles") == 1, 120, "the feed, without Telegram")
        assert service.stop(signal.SIGTERM, timeout=30) == 0
    finally:
        service.kill()
    assert "Traceback" not in service.log()
