"""The two ways users choose URLs, `newsqa ingest URL...` and the admin's /add, share the safety rules."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

import retrieval.ingest.web as web
from bot.cli import cli
from retrieval.config import Config, WebConfig
from retrieval.models.encoder import Encoder
from retrieval.newsindex import NewsIndex
from tests.fake_bot_api import FakeBotApi
from tests.telegram_fixtures import BotRunner, bot_config, fake_api_fixture, no_real_telegram_fixture  # noqa: F401
from tests.web_fixtures import STORIES, Item, WebSite, site_fixture  # noqa: F401

pytestmark = pytest.mark.timeout(120)

ADMIN = 4242


def unsafe_urls(site: WebSite) -> list[str]:
    """The URLs every user-facing path must refuse while private networks are not allowed."""
    return [
        site.url("/news/lighthouse.html"),  # http://127.0.0.1:PORT/...
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        f"http://news.example.com:{site.port}/news/lighthouse.html",  # resolves to 10.0.0.7 below
    ]


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve the test's public-looking names through a table, never the network."""
    table = {"news.example.com": ["10.0.0.7"], "site.example.org": ["127.0.0.1"]}

    def resolve(host: str, port: int) -> Sequence[str]:
        if host not in table:
            raise OSError(f"test resolver: unknown host {host}")
        return table[host]

    monkeypatch.setattr(web, "system_resolve", resolve)


def invoke(tmp_path: Path, *args: str, allow_private: bool = False) -> tuple[int, str]:
    config = tmp_path / "empty.toml"
    config.write_text("", encoding="utf-8")
    env = {"NEWSQA_CONFIG": str(config), "NEWSQA_WEB_ALLOW_PRIVATE_NETWORKS": "true" if allow_private else "false"}
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "ingest", *args], env=env)
    return result.exit_code, result.output


def test_ingest_refuses_unsafe_urls_and_requests_nothing(site: WebSite, tmp_path: Path) -> None:
    site.put_story(STORIES[0])
    code, output = invoke(tmp_path, *unsafe_urls(site))
    assert code == 1
    lines = [line for line in output.splitlines() if line.startswith("newsqa: ")]
    assert len(lines) == 4, output
    assert "127.0.0.1 is a loopback address; refused" in lines[0]
    assert "169.254.169.254 is a cloud metadata address; refused" in lines[1]
    assert "only http and https URLs can be fetched" in lines[2]
    assert "news.example.com (10.0.0.7) is a private address; refused" in lines[3]
    assert site.requests == []


def test_ingest_reads_a_feed_and_a_page_when_private_networks_are_allowed(site: WebSite, tmp_path: Path) -> None:
    for story in STORIES[:2]:
        site.put_story(story)
    feed = site.put_feed("/feed.atom", [Item(s, site.url(f"/news/{s.slug}.html")) for s in STORIES[:2]], "atom")
    page = site.put_story(STORIES[2])
    code, output = invoke(tmp_path, feed, page, allow_private=True)
    assert code == 0, output
    assert f"{feed}: 2 added" in output and f"{page}: 1 added" in output
    code, output = invoke(tmp_path, feed, allow_private=True)
    assert code == 0 and f"{feed}: 0 added, 0 updated, 1 unchanged" in output
    assert site.hits("/feed.atom")[-1].status == 304


def test_ingest_of_a_redirect_loop_and_a_huge_page_fails_cleanly(site: WebSite, tmp_path: Path) -> None:
    config = tmp_path / "web.toml"
    config.write_text("[web]\nallow_private_networks = true\nmax_bytes = 1000000\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        [
            "--config",
            str(config),
            "--data-dir",
            str(tmp_path / "data"),
            "ingest",
            site.url("/loop-a"),
            site.url("/huge"),
        ],
    )
    assert result.exit_code == 1
    assert "redirect loop" in result.output and "cut off at the 1,000,000-byte limit" in result.output
    assert "Traceback" not in result.output


@pytest.fixture
def admin_bot(
    fake_api: FakeBotApi, no_real_telegram: list[str], tmp_path: Path, encoder: Encoder
) -> Iterator[tuple[FakeBotApi, list[BotRunner], Path]]:
    runners: list[BotRunner] = []
    yield fake_api, runners, tmp_path
    for runner in runners:
        runner.stop()


def start_admin_bot(api: FakeBotApi, runners: list[BotRunner], tmp: Path, encoder: Encoder, allow: bool) -> NewsIndex:
    config = Config(data_dir=str(tmp / f"data-{allow}"), web=WebConfig(allow_private_networks=allow, timeout=3.0))
    index = NewsIndex.open(config, encoder=encoder, create=True)
    runner = BotRunner(bot_config(api, index, tmp, admins=(ADMIN,)), index, api).start()
    runners.append(runner)
    return index


def add(api: FakeBotApi, url: str) -> str:
    user = api.user(ADMIN)
    chat = api.private_chat(user)
    before = len(api.sent(chat["id"]))
    api.send_text(chat, user, f"/add {url}")
    return str(api.wait_sent(chat["id"], count=before + 1, timeout=30)[before]["text"])


def test_add_refuses_unsafe_urls(
    admin_bot: tuple[FakeBotApi, list[BotRunner], Path], site: WebSite, encoder: Encoder
) -> None:
    api, runners, tmp = admin_bot
    site.put_story(STORIES[0])
    start_admin_bot(api, runners, tmp, encoder, allow=False)
    loopback, metadata, file_url, private_name = unsafe_urls(site)
    assert "loopback address; refused" in add(api, loopback)
    assert "cloud metadata address; refused" in add(api, metadata)
    assert "Usage: /add https://" in add(api, file_url)
    assert "news.example.com (10.0.0.7) is a private address; refused" in add(api, private_name)
    assert site.requests == []
    assert [c for c in api.refusals() if c.method == "sendmessage"] == []


def test_add_reads_a_page_and_the_bot_answers_from_it(
    admin_bot: tuple[FakeBotApi, list[BotRunner], Path], site: WebSite, encoder: Encoder
) -> None:
    api, runners, tmp = admin_bot
    index = start_admin_bot(api, runners, tmp, encoder, allow=True)
    url = site.put_story(STORIES[3])
    assert "1 added" in add(api, url)
    user = api.user(77)
    chat = api.private_chat(user)
    api.send_text(chat, user, "How many passengers were stranded by the ferry strike?")
    [reply] = api.wait_sent(chat["id"], timeout=30)
    assert "3,400 passengers" in reply["text"]
    assert index.stats().articles == 1
    assert dataclasses.asdict(index.check())["problems"] == ()
