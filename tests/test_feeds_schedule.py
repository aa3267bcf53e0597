"""Feed schedules: intervals from the config, retries with back-off, one broken feed never stops the others."""

from __future__ import annotations

import json
import logging

import pytest

from bot.config import AppConfig, ServeConfig
from bot.logs import JsonFormatter
from bot.serve.runner import Service
from retrieval.config import FeedConfig
from retrieval.errors import ConfigError
from retrieval.ingest.schedule import RETRY_FIRST, FeedSchedule, parse_every


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("900", 900.0), ("30s", 30.0), ("15m", 900.0), ("1h", 3600.0), ("1.5h", 5400.0), ("2d", 172800.0), (45, 45.0)],
)
def test_every_accepts_seconds_and_units(value: str | int, seconds: float) -> None:
    assert parse_every(value) == seconds


@pytest.mark.parametrize("value", ["", "soon", "15 minutes", "-5", "0s", "1w", "0.5"])
def test_every_refuses_what_it_cannot_read(value: str) -> None:
    with pytest.raises(ConfigError, match="every"):
        parse_every(value)


def test_every_feed_is_due_at_start_then_after_its_interval() -> None:
    schedule = FeedSchedule.of(
        (FeedConfig("https://a.example/rss", "1m"), FeedConfig("https://b.example/rss", "1h")), 100.0
    )
    assert [s.feed.url for s in schedule.due(100.0)] == ["https://a.example/rss", "https://b.example/rss"]
    a, b = schedule.feeds
    schedule.succeeded(a, 101.0, 0.0)
    schedule.succeeded(b, 102.0, 0.0)
    assert schedule.due(150.0) == []
    assert schedule.next_due() == 161.0
    assert schedule.due(161.0) == [a]


def test_a_broken_feed_is_retried_with_back_off_and_the_others_keep_their_schedule() -> None:
    schedule = FeedSchedule.of(
        (FeedConfig("https://a.example/rss", "1h"), FeedConfig("https://b.example/rss", "1m")), 0.0
    )
    broken, good = schedule.feeds
    delays = []
    now = 0.0
    for _ in range(4):
        schedule.failed(broken, now, "HTTP 500")
        delays.append(broken.next_due - now)
        now = broken.next_due
    assert delays == [RETRY_FIRST, 2 * RETRY_FIRST, 4 * RETRY_FIRST, 8 * RETRY_FIRST]
    schedule.failed(broken, now, "HTTP 500")
    assert broken.next_due - now <= 3600  # never later than the feed's own interval
    schedule.succeeded(good, 10.0, 0.0)
    assert good.next_due == 70.0 and good.failures == 0
    schedule.succeeded(broken, now, 0.0)
    assert broken.failures == 0 and broken.last_error is None


def test_a_feed_listed_twice_or_with_a_bad_interval_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="listed twice"):
        FeedSchedule.of((FeedConfig("https://a.example/rss"), FeedConfig("https://a.example/rss")), 0.0)
    with pytest.raises(ConfigError, match=r"feeds\[1\]\.every"):
        FeedSchedule.of((FeedConfig("https://a.example/rss", "often"),), 0.0)


def test_webhook_mode_needs_a_url_and_modes_are_checked() -> None:
    with pytest.raises(ConfigError, match="webhook_url"):
        Service(AppConfig(serve=ServeConfig(mode="webhook")))
    with pytest.raises(ConfigError, match=r"serve\.mode"):
        Service(AppConfig(), mode="carrier-pigeon")


def test_log_records_become_one_json_object_per_line() -> None:
    record = logging.LogRecord("bot.service", logging.WARNING, __file__, 1, "feed %s failed: %s", ("u", "x\ny"), None)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "WARNING" and data["logger"] == "bot.service" and data["message"] == "feed u failed: x\ny"
