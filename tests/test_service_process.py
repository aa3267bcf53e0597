"""`newsqa serve` as a real process: feeds on a loopback site, the fake Bot API, signals, crashes.

Each test starts the service through its entry point with an empty data directory; the model
load makes every start cost a few seconds, so there are few starts.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Databases, storage_env
from tests.fake_bot_api import FakeBotApi
from tests.serve_fixtures import (
    EVERY,
    Notifications,
    ServeProcess,
    WebhookFakeApi,
    allow_set_webhook,
    ask,
    count_articles,
    feed_of,
    free_port,
    health,
    links,
    many_stories,
    post_update,
    service_config,
    wait_until,
)
from tests.telegram_fixtures import TOKEN, fake_api_fixture  # noqa: F401
from tests.web_fixtures import STORIES, WebSite, site_fixture  # noqa: F401

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


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


def test_serve_in_webhook_mode_checks_the_secret_answers_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, databases: Databases | None
) -> None:
    allow_set_webhook(monkeypatch)
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
                return post_update(port, "/tg/hook", secret, update)

            wait_until(lambda: post("wrong") == 403, 30, "the webhook server to refuse a wrong secret")
            assert post("s3cret_abc") == 200
            [answer] = api.wait_sent(chat["id"], timeout=30)
            assert "Harbour Town won the National Cup" in answer["text"]
            assert service.stop(signal.SIGTERM) == 0
        finally:
            service.kill()
        log = service.log()
        assert "s3cret_abc" not in log and TOKEN.split(":")[1] not in log and "Traceback" not in log
