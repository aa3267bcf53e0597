"""`newsqa serve` as a feeds-only worker (no bot token), and feed URLs that can never be fetched refused at start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from retrieval.config import Config, FeedConfig, WebConfig
from retrieval.errors import ConfigError
from tests.fake_bot_api import FakeBotApi
from tests.serve_fixtures import (
    ServeProcess,
    count_articles,
    feed_of,
    free_port,
    health,
    newsqa_command,
    service_config,
    wait_until,
)
from tests.telegram_fixtures import fake_api_fixture  # noqa: F401
from tests.web_fixtures import STORIES, WebSite, site_fixture  # noqa: F401

pytestmark = pytest.mark.timeout(300)


@pytest.mark.slow
def test_serve_without_a_token_runs_as_a_feeds_only_worker(fake_api: FakeBotApi, site: WebSite, tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    service = ServeProcess(tmp_path, fake_api, service_config(data, feed_of(site, STORIES[:2]), port))
    del service.env["NEWSQA_TELEGRAM_TOKEN"]
    service.start()
    try:
        body = wait_until(lambda: (b := health(port)) and b.get("articles") == 2 and b, 120, "the feed's articles")
        assert body["status"] == "ok" and body["role"] == "feeds" and body["telegram"] == {"state": "off"}
        assert service.stop(signal.SIGTERM) == 0
    finally:
        service.kill()
    assert count_articles(data) == 2
    records = [json.loads(line) for line in service.log().splitlines() if line.strip()]
    assert any("feeds-only ingestion worker" in r["message"] for r in records)
    assert "Traceback" not in service.log()
    assert fake_api.calls == []  # it never spoke to Telegram


def _serve_once(tmp_path: Path, config: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.toml"
    path.write_text(config, encoding="utf-8")
    return subprocess.run(
        [*newsqa_command(), "--config", str(path), "serve"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_serve_without_token_or_feeds_says_what_is_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NEWSQA_TELEGRAM_TOKEN", "NEWSQA_CONFIG")}
    done = subprocess.run(
        [*newsqa_command(), "--data-dir", str(tmp_path / "d"), "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert "no Telegram bot token" in line and "feeds-only" in line


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:9/feed.rss", "127.0.0.1 is a loopback address"),
        ("http://10.20.30.40/feed.rss", "10.20.30.40 is a private address"),
        ("http://localhost/feed.rss", "is a loopback address"),
        ("http://169.254.169.254/latest/", "cloud metadata"),
    ],
)
def test_a_feed_that_can_never_be_fetched_is_refused_at_start(tmp_path: Path, url: str, reason: str) -> None:
    config = f'data_dir = "{tmp_path / "data"}"\n[[feeds]]\nurl = "{url}"\n'
    done = _serve_once(tmp_path, config, {"NEWSQA_TELEGRAM_TOKEN": "123:abc"})
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("newsqa: feed 1 can never be fetched: ") and reason in line, line
    assert not (tmp_path / "data").exists()  # refused before anything was opened


def test_file_urls_are_refused_when_the_config_is_read(tmp_path: Path) -> None:
    config = f'data_dir = "{tmp_path / "data"}"\n[[feeds]]\nurl = "file:///etc/hostname"\n'
    done = _serve_once(tmp_path, config, {"NEWSQA_TELEGRAM_TOKEN": "123:abc"})
    assert done.returncode == 1
    assert "feed 1: url must be an http:// or https:// URL" in done.stderr


def test_private_feeds_are_allowed_when_the_config_says_so() -> None:
    from bot.serve.runner import refuse_unfetchable_feeds

    feeds = (FeedConfig("http://10.20.30.40/feed.rss"),)
    refuse_unfetchable_feeds(Config(feeds=feeds, web=WebConfig(allow_private_networks=True)))
    with pytest.raises(ConfigError, match="private address"):
        refuse_unfetchable_feeds(Config(feeds=feeds))


@pytest.mark.slow
def test_a_token_telegram_refuses_stops_serve_with_one_line(
    fake_api: FakeBotApi, site: WebSite, tmp_path: Path
) -> None:
    port = free_port()
    service = ServeProcess(tmp_path, fake_api, service_config(tmp_path / "data", feed_of(site, STORIES[:1]), port))
    service.env["NEWSQA_TELEGRAM_TOKEN"] = "999:WRONG-TOKEN"
    service.start()
    try:
        assert service.process is not None
        assert service.process.wait(timeout=120) == 1
    finally:
        service.kill()
    log = service.log()
    assert "Traceback" not in log and "WRONG-TOKEN" not in log
    assert log.strip().splitlines()[-1].startswith("newsqa: Telegram refused the bot token"), log[-500:]
