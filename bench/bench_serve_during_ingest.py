"""Answer latency of a running `newsqa serve` while `newsqa ingest` adds 2,000 articles in another process.

Everything runs on loopback: the fake Bot API from the tests plays the users, `newsqa serve` and
`newsqa ingest` are real processes on one data directory. The articles are synthetic text made
here. Bounded: at most --questions idle questions, and questions during the ingest until it ends
or --max-seconds pass.

    .venv/bin/python bench/bench_serve_during_ingest.py [--articles 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fake_bot_api import FakeBotApi  # noqa: E402
from tests.telegram_fixtures import TOKEN  # noqa: E402

SAMPLE = ROOT / "bot" / "sample" / "articles"
QUESTIONS = [
    "How far did the Kestrel probe travel?",
    "What did the central bank decide about rates?",
    "Who won the cup final?",
    "How many paintings were recovered by the museum?",
    "Why was the election recount ordered?",
    "How big is the new chip factory?",
    "What happened to the Riverside tram line?",
    "How many people were evacuated because of the wildfire?",
]
TOWNS = ["Arden", "Bexley", "Corran", "Dunmore", "Elstow", "Farley", "Glenby", "Harrow", "Ilsted", "Jarrow"]
TOPICS = ["bridge", "library", "harbour", "school", "clinic", "market", "railway", "park", "museum", "stadium"]


def synthetic_articles(count: int, seed: int = 7) -> list[dict[str, str]]:
    """Return ``count`` distinct short news articles with their own names and numbers."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        town, topic = TOWNS[n % len(TOWNS)], TOPICS[(n // len(TOWNS)) % len(TOPICS)]
        code = f"{town}-{topic}-{n}"
        paragraphs = [
            f"The council of {town} approved a plan on Monday to rebuild the {topic} known locally as "
            f"site {code}, at a cost of {rng.randint(2, 90)} million crowns spread over {rng.randint(2, 9)} years.",
            f"Residents of {town} had asked for the work since a survey found that the {topic} served "
            f"{rng.randint(300, 9000)} people a week, far more than it was built for.",
            f"Work on site {code} is due to start in {rng.choice(['spring', 'summer', 'autumn', 'winter'])}, "
            f"and the contractor, {rng.choice(['Norbuild', 'Coastline Works', 'Granite & Sons'])}, said "
            f"{rng.randint(40, 400)} workers would be hired.",
        ]
        out.append(
            {
                "url": f"https://synthetic.example/{town.lower()}/{topic}/{n}",
                "title": f"{town} approves plan for its {topic} ({n})",
                "source": "Synthetic Courier",
                "published": "2025-05-01",
                "text": "\n\n".join(paragraphs),
            }
        )
    return out


def ask(api: FakeBotApi, user_id: int, question: str, timeout: float = 60) -> tuple[float, str]:
    user = api.user(user_id)
    chat = api.private_chat(user)
    before = len(api.sent(chat["id"]))
    started = time.perf_counter()
    api.send_text(chat, user, question)
    reply = api.wait_sent(chat["id"], count=before + 1, timeout=timeout)[before]
    return time.perf_counter() - started, str(reply["text"])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--questions", type=int, default=40, help="idle questions")
    parser.add_argument("--max-seconds", type=float, default=600)
    args = parser.parse_args()
    newsqa = str(Path(sys.executable).with_name("newsqa"))
    with tempfile.TemporaryDirectory() as tmp_name, FakeBotApi(TOKEN) as api:
        tmp = Path(tmp_name)
        data = tmp / "data"
        (tmp / "config.toml").write_text('[serve]\nrefresh_every = "2s"\n', encoding="utf-8")
        env = {
            **os.environ,
            "NEWSQA_CONFIG": str(tmp / "config.toml"),
            "NEWSQA_DATA_DIR": str(data),
            "NEWSQA_TELEGRAM_TOKEN": TOKEN,
            "NEWSQA_TELEGRAM_BASE_URL": api.base_url,
            "NEWSQA_TELEGRAM_RATE_LIMIT": "0",
            "HF_HUB_OFFLINE": "1",
            "ORT_DISABLE_TELEMETRY": "1",
        }
        subprocess.run([newsqa, "ingest", str(SAMPLE)], env=env, check=True, capture_output=True)
        articles = tmp / "articles.jsonl"
        with articles.open("w", encoding="utf-8") as fh:
            for item in synthetic_articles(args.articles):
                fh.write(json.dumps(item) + "\n")
        serve = subprocess.Popen([newsqa, "serve"], env=env, stderr=(tmp / "serve.log").open("wb"))
        try:
            api.wait_polling(timeout=120)
            ask(api, 1, QUESTIONS[0])  # warm up
            idle = [ask(api, 1, QUESTIONS[i % len(QUESTIONS)])[0] for i in range(args.questions)]
            started = time.perf_counter()
            ingest = subprocess.Popen(
                [newsqa, "ingest", str(articles)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            busy: list[float] = []
            i = 0
            while ingest.poll() is None and time.perf_counter() - started < args.max_seconds:
                busy.append(ask(api, 2, QUESTIONS[i % len(QUESTIONS)])[0])
                i += 1
            out, err = ingest.communicate(timeout=max(1.0, args.max_seconds - (time.perf_counter() - started)))
            ingest_seconds = time.perf_counter() - started
            # After the ingest: an answer only the new articles hold (the bot refreshes every 2 s).
            time.sleep(3)
            latency, text = ask(api, 3, "How many workers will be hired for site Corran-library-12?")
            serve.send_signal(signal.SIGTERM)
            code = serve.wait(timeout=120)
        finally:
            if serve.poll() is None:
                serve.kill()
        print(f"ingest: {out.decode().strip() or err.decode().strip()[-300:]} ({ingest_seconds:.0f} s wall)")
        for name, values in (("idle", idle), ("during ingest", busy)):
            print(
                f"{name:14s} n={len(values):3d}  p50 {statistics.median(values) * 1000:6.0f} ms  "
                f"p95 {pct(values, 0.95) * 1000:6.0f} ms  max {max(values) * 1000:6.0f} ms"
            )
        found = "Corran-library-12" in text
        print(f"after ingest: answered from the new articles: {found} ({latency * 1000:.0f} ms); serve exit {code}")


if __name__ == "__main__":
    main()
