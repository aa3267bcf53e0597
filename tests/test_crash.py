"""A killed ingestion loses nothing: run it again and every article is there exactly once."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

TOWNS = ["Avonlea", "Brackwater", "Cindervale", "Dunmore", "Eastwick", "Farrowdale", "Glenhollow", "Harrowgate"]
TOPICS = ["bridge repairs", "a school opening", "a bus strike", "flood defences", "a library vote", "a market fire"]


def _corpus(path: Path, n: int) -> None:
    rng = random.Random(7)
    with path.open("w") as fh:
        for i in range(n):
            town, topic = rng.choice(TOWNS), rng.choice(TOPICS)
            paragraphs = [
                f"Officials in {town} announced {topic} on day {i}. "
                f"The plan was approved by {rng.randint(5, 40)} votes to {rng.randint(0, 4)} after a long meeting. "
                f"Residents said they had waited {rng.randint(2, 12)} years."
                for _ in range(6)
            ]
            fh.write(
                json.dumps(
                    {
                        "url": f"https://example.org/{i}",
                        "title": f"{town}: {topic}",
                        "source": "Example",
                        "published": "2025-02-03",
                        "text": "\n\n".join(paragraphs),
                    }
                )
                + "\n"
            )


def _newsqa(*args: str) -> list[str]:
    return [sys.executable, "-m", "bot.cli", *args]


def _count(db: Path, sql: str) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute(sql).fetchone()[0])
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_kill_9_during_ingest_then_rerun_leaves_every_article_once_and_check_clean(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    _corpus(corpus, 400)
    data = tmp_path / "data"
    db = data / "newsqa.sqlite3"
    log = tmp_path / "ingest.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(_newsqa("--data-dir", str(data), "ingest", str(corpus)), stderr=out, stdout=out)
    deadline = time.monotonic() + 240
    # Kill it after at least one batch is committed and well before the end.
    while _count(db, "SELECT COUNT(*) FROM articles") < 64 and time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _count(db, "SELECT COUNT(*) FROM articles")
    assert 0 < partial < 400, "the kill should land mid-ingest"

    # The store is consistent as committed; the index files are stale and check says so.
    check = subprocess.run(_newsqa("--data-dir", str(data), "check"), capture_output=True, text=True)
    assert check.returncode in (0, 1)

    again = subprocess.run(_newsqa("--data-dir", str(data), "ingest", str(corpus)), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert f"{400 - partial} added" in again.stderr + again.stdout
    assert _count(db, "SELECT COUNT(*) FROM articles") == 400
    assert _count(db, "SELECT COUNT(DISTINCT url) FROM articles") == 400
    assert (
        _count(db, "SELECT COUNT(*) FROM (SELECT article_id, ordinal FROM passages GROUP BY 1, 2 HAVING COUNT(*) > 1)")
        == 0
    )
    final = subprocess.run(_newsqa("--data-dir", str(data), "check"), capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    assert final.stdout.startswith("ok: 400 articles")
