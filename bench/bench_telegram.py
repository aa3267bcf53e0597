"""Latency of the Telegram bot: 50 questions from 10 users at once, against the same one by one.

The real Application long-polls the fake Bot API (tests/fake_bot_api.py) over loopback HTTP and
answers from a real index (the packaged MiniLM, FAISS, SQLite) of the test articles. Latency of an
answer is from the moment its update is queued at the fake to the moment the fake has accepted
the bot's reply. Run from the repository root::

    .venv/bin/python bench/bench_telegram.py [--users 10] [--per-user 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrieval.config import Config, PassageConfig
from retrieval.models.loading import load_encoder
from retrieval.newsindex import NewsIndex
from tests.fake_bot_api import FakeBotApi
from tests.telegram_fixtures import TOKEN, BotRunner, bot_config, telegram_articles

QUESTIONS = [
    "Who won the cup final?",
    "What did the central bank decide?",
    "How much dust did the asteroid probe collect?",
    "Why was the harbour bridge closed?",
    "What did the café owner write on the menu?",
    "What did witnesses tell the bridge inquiry?",
    "How much will the bridge repairs cost?",
    "When did the bridge reopen to buses?",
    "Who scored for Riverside?",
    "Why did budget cuts delay the repairs?",
]


def percentile(values: list[float], p: float) -> float:
    """Return the p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


def latencies(api: FakeBotApi, asked: dict[tuple[int, int], float]) -> list[float]:
    """Return, per question, seconds from queuing it to the fake accepting its reply."""
    out = []
    for call in api.calls:
        if call.method == "sendmessage" and call.status == 200:
            replied = call.result.get("reply_to_message")
            if replied is not None:
                out.append(call.at - asked[(call.result["chat"]["id"], replied["message_id"])])
    return out


def run(index: NewsIndex, tmp: Path, users: int, per_user: int, together: bool) -> tuple[float, list[float]]:
    """Ask users*per_user questions, all at once or one by one; return wall time and latencies."""
    with FakeBotApi(TOKEN) as api:
        runner = BotRunner(bot_config(api, index, tmp, rate_limit=0), index, api).start()
        try:
            people = [api.user(1000 + u) for u in range(users)]
            asked: dict[tuple[int, int], float] = {}
            started = time.monotonic()
            for n in range(per_user):
                for u, person in enumerate(people):
                    chat = api.private_chat(person)
                    at = time.monotonic()
                    message = api.send_text(chat, person, QUESTIONS[(u + n) % len(QUESTIONS)])
                    asked[(chat["id"], message["message_id"])] = at
                    if not together:
                        api.wait_sent(person["id"], n + 1, timeout=60)
            for person in people:
                api.wait_sent(person["id"], per_user, timeout=300)
            wall = time.monotonic() - started
            assert not api.refusals(), api.refusals()
            return wall, latencies(api, asked)
        finally:
            runner.stop()


def main() -> None:
    """Build the index, run both rounds and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--per-user", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        config = Config(data_dir=str(tmp / "data"), passages=PassageConfig(target_words=200, max_words=300))
        index = NewsIndex.open(config, encoder=load_encoder(config.model), create=True)
        index.ingest(telegram_articles())
        index.ask("warm up the model and the indexes")
        total = args.users * args.per_user
        print(f"{total} questions from {args.users} users, {os.cpu_count()} CPUs, real MiniLM index")
        for label, together in (("one by one", False), ("all at once", True)):
            wall, lat = run(index, tmp, args.users, args.per_user, together)
            assert len(lat) == total, f"{len(lat)} of {total} answered"
            print(
                f"{label:>12}: all answered in {wall:6.2f} s; per answer "
                f"p50 {statistics.median(lat) * 1000:6.0f} ms, "
                f"p95 {percentile(lat, 95) * 1000:6.0f} ms, "
                f"max {max(lat) * 1000:6.0f} ms"
            )
        index.close()


if __name__ == "__main__":
    main()
