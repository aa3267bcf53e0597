"""Several ``newsqa serve`` replicas on one store, as real processes, on both storage backends.

On PostgreSQL the replicas could be on different machines; on the local backend they share one
data directory on one machine. Either way: each feed is polled by one replica at a time and its
entries are stored once; in webhook mode every replica answers; in polling mode one replica
long-polls Telegram and the other stands by until the poller dies; a replica killed in the middle
of an ingest loses nothing and the other carries on.
"""

from __future__ import annotations

import itertools
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from retrieval.config import Config
from tests.conftest import Databases, storage_env, storage_for
from tests.fake_bot_api import FakeBotApi
from tests.serve_fixtures import (
    ServeProcess,
    WebhookFakeApi,
    allow_set_webhook,
    ask,
    feed_of,
    free_port,
    health,
    many_stories,
    post_update,
    wait_until,
)
from tests.telegram_fixtures import TOKEN, fake_api_fixture  # noqa: F401
from tests.test_coordination import coordinator_for
from tests.web_fixtures import STORIES, WebSite, site_fixture  # noqa: F401

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

SAMPLE = Path(__file__).resolve().parents[1] / "bot" / "sample" / "articles"
SECRET = "replica_secret_1"


def replica_config(
    data: Path, health_port: int, *, feed_url: str = "", webhook_port: int = 0, every: str = "2s"
) -> str:
    """Return a replica's config: the shared store, its own ports, the shared feed."""
    text = f'data_dir = "{data}"\n\n[web]\nallow_private_networks = true\ntimeout = 5.0\nbackoff = 0.1\n\n'
    text += f'[serve]\nrefresh_every = "1s"\ntakeover_every = "1s"\nhealth_port = {health_port}\n'
    if webhook_port:
        text += f'mode = "webhook"\nwebhook_url = "https://bot.example.org/tg/hook"\nport = {webhook_port}\n'
    text += '\n[log]\nlevel = "INFO"\n'
    if feed_url:
        text += f'\n[[feeds]]\nurl = "{feed_url}"\nevery = "{every}"\nsource = "Coast Gazette"\n'
    return text


class Replica:
    """One replica: its process, its health port and (in webhook mode) its webhook port."""

    def __init__(
        self, root: Path, number: int, api: FakeBotApi, data: Path, env: dict[str, str], **config: Any
    ) -> None:
        folder = root / f"replica{number}"
        folder.mkdir()
        self.health_port = free_port()
        self.webhook_port = free_port() if config.pop("webhook", False) else 0
        text = replica_config(data, self.health_port, webhook_port=self.webhook_port, **config)
        self.process = ServeProcess(folder, api, text, {"NEWSQA_SERVE_SECRET_TOKEN": SECRET, **env})

    def start(self) -> Replica:
        self.process.start()
        return self

    def health(self) -> dict[str, Any]:
        return health(self.health_port) or {}

    @property
    def pid(self) -> int:
        assert self.process.process is not None
        return self.process.process.pid

    def alive(self) -> bool:
        return self.process.process is not None and self.process.process.poll() is None

    def kill_9(self) -> None:
        assert self.process.process is not None
        self.process.process.kill()
        self.process.process.wait()

    def log(self) -> str:
        return self.process.log()


_update_ids = itertools.count(5001)


def answer_from(api: FakeBotApi, replica: Replica, user_id: int, question: str, expected: str) -> str:
    """POST a question to a replica's webhook until its reply holds ``expected`` (a new article is
    answered once the replica has reloaded the index the writer saved); return that reply."""
    user = api.user(user_id)
    chat = api.private_chat(user)
    replies: list[str] = []

    def answered() -> bool:
        update_id = next(_update_ids)
        update = {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": int(time.time()),
                "chat": chat,
                "from": user,
                "text": question,
            },
        }
        if post_update(replica.webhook_port, "/tg/hook", SECRET, update) != 200:
            return False
        replies.append(api.wait_sent(chat["id"], count=len(replies) + 1, timeout=30)[-1]["text"])
        return expected in replies[-1]

    wait_until(answered, 30, f"an answer holding {expected!r}", every=0.5)
    return replies[-1]


def test_two_webhook_replicas_poll_one_feed_once_and_both_answer_from_it(
    site: WebSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, databases: Databases | None
) -> None:
    allow_set_webhook(monkeypatch)
    feed_url = feed_of(site, STORIES[:2])
    data = tmp_path / "data"
    with WebhookFakeApi(TOKEN) as api:
        env = storage_env(databases)
        replicas = [Replica(tmp_path, n, api, data, env, feed_url=feed_url, webhook=True).start() for n in (1, 2)]
        try:
            for replica in replicas:
                wait_until(lambda r=replica: r.health().get("articles") == 2, 120, "both replicas to see the feed")
            # Updates reach either replica (a load balancer in front): both answer from the feed.
            for number, replica in enumerate(replicas, start=1):
                answer_from(
                    api, replica, 800 + number, "How many steps does the Grey Point lighthouse have?", "212 steps"
                )
            # A new entry is read once, by one of them, and both answer from it.
            feed_of(site, [*STORIES[:2], STORIES[3]])
            for number, replica in enumerate(replicas, start=3):
                question = "How many passengers were stranded by the ferry strike?"
                answer_from(api, replica, 800 + number, question, "3,400 passengers")
            # Several polling intervals with both replicas up: the feed was still polled one
            # replica at a time, never twice within one interval by the two together.
            time.sleep(5)
            reports = [r.health() for r in replicas]
            feed_hits = site.hits("/feed.rss")
            for replica in replicas:
                assert replica.process.stop(signal.SIGTERM) == 0
        finally:
            for replica in replicas:
                replica.process.kill()
    for story in [*STORIES[:2], STORIES[3]]:
        assert len(site.hits(f"/news/{story.slug}.html")) == 1, story.slug  # each entry read once
    assert sum(r["feeds"][0]["polled_elsewhere"] for r in reports) > 0
    polls = sum(r["feeds"][0]["polls"] for r in reports)
    assert len(feed_hits) <= polls + 1, (len(feed_hits), polls)
    assert all(r["role"] == "webhook" for r in reports)
    for replica in replicas:
        log = replica.log()
        assert SECRET not in log and TOKEN.split(":")[1] not in log and "Traceback" not in log


def test_polling_replicas_elect_one_poller_and_the_standby_takes_over_after_kill_9(
    fake_api: FakeBotApi, tmp_path: Path, databases: Databases | None
) -> None:
    data = tmp_path / "data"
    env = storage_env(databases)
    replicas = [Replica(tmp_path, n, fake_api, data, env) for n in (1, 2)]
    assert replicas[0].process.run_cli("ingest", str(SAMPLE)).returncode == 0
    for replica in replicas:
        replica.start()
    try:
        roles = wait_until(
            lambda: sorted(r.health().get("role", "") for r in replicas) == ["poller", "standby"] and True,
            120,
            "one poller and one standby",
        )
        assert roles
        poller = next(r for r in replicas if r.health()["role"] == "poller")
        standby = next(r for r in replicas if r is not poller)
        assert standby.health()["status"] == "ok"  # a standby is healthy, not "not receiving updates"
        reply = ask(fake_api, 901, "Who won the cup final?")
        assert "Harbour Town won the National Cup" in reply["text"]
        time.sleep(3)  # several takeover checks: the standby never polls while the poller lives
        assert [c for c in fake_api.calls if c.status == 409] == []
        poller.kill_9()
        killed = time.monotonic()
        wait_until(lambda: standby.health().get("role") == "poller", 60, "the standby to take over")
        took = time.monotonic() - killed
        reply = ask(fake_api, 902, "Who won the cup final?")
        assert "Harbour Town won the National Cup" in reply["text"]
        print(f"standby polling {took:.1f} s after the poller's kill -9 (takeover_every 1 s)")
        assert standby.process.stop(signal.SIGTERM) == 0
    finally:
        for replica in replicas:
            replica.process.kill()
    assert "took over" not in standby.log()  # it took the free lock; nobody was displaced
    assert fake_api.refusals() == []


def test_kill_9_of_the_replica_ingesting_a_feed_loses_nothing_and_the_other_carries_on(
    site: WebSite, fake_api: FakeBotApi, tmp_path: Path, databases: Databases | None
) -> None:
    data = tmp_path / "data"
    stories = many_stories(100)  # two ingest batches of at most 64 articles
    site.page_delay = 0.05  # a slow site: the ingest lasts a few seconds
    feed_url = site.url("/feed.rss")
    env = storage_env(databases)
    replicas = [Replica(tmp_path, n, fake_api, data, env, feed_url=feed_url, every="3s").start() for n in (1, 2)]
    config = Config(data_dir=str(data), storage=storage_for(databases, "data"))
    coordinator = coordinator_for(config)
    try:
        for replica in replicas:
            wait_until(lambda r=replica: r.health().get("status") == "ok", 120, "both replicas up")
        feed_of(site, stories)  # published only now: both are up and due
        holder = wait_until(
            lambda: coordinator.holder(f"feed {feed_url}"), 30, "a replica to poll the feed", every=0.05
        )
        ingesting = next(r for r in replicas if r.pid == holder)
        other = next(r for r in replicas if r is not ingesting)
        wait_until(lambda: (other.health().get("articles") or 0) > 0, 120, "the first committed batch", every=0.05)
        ingesting.kill_9()
        at_kill = other.health()["articles"]
        assert at_kill < 100, "the ingest finished before the kill; the test needs a slower site"
        wait_until(lambda: other.health().get("articles") == 100, 120, "the other replica to ingest the rest")
        reply = ask(fake_api, 951, "How many books did the new library of town 77 open with?", timeout=60)
        assert "2,860" in reply["text"] or "2860" in reply["text"], reply["text"]
        assert other.process.stop(signal.SIGTERM) == 0
    finally:
        for replica in replicas:
            replica.process.kill()
    check = other.process.run_cli("check")
    assert check.returncode == 0 and "ok: 100 articles" in check.stdout, check.stdout + check.stderr
    print(f"killed the ingesting replica with {at_kill} of 100 articles stored; the other stored all 100")
