"""A long ingest shows what it is doing: a bar on a terminal, a line every N seconds otherwise; a second
writer says whom it waits for, and its rates leave the wait out."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

from bot.progress import IngestProgress, count_articles, format_duration
from retrieval.ingest.indexing import IngestReport
from retrieval.storage.local.locking import writer_lock


def _articles(path: Path, count: int) -> Path:
    lines = []
    for n in range(count):
        text = (
            f"The harbour of Port {n} reopened on Monday after {n + 2} weeks of dredging, the port authority said. "
            f"Ships of up to {n * 100 + 900} tonnes can now reach the inner quay, and the ferry to the island of "
            f"Skerra {n} will run twice a day again from next week."
        )
        lines.append(json.dumps({"url": f"https://example.org/port/{n}", "title": f"Port {n} reopens", "text": text}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _newsqa(*args: str) -> list[str]:
    return [sys.executable, "-m", "bot.cli", *args]


def test_lines_give_articles_passages_rates_and_time_left() -> None:
    stream = io.StringIO()
    shown = IngestProgress(100, Path("/data"), stream=stream, every=0.0, tty=False)
    shown.passages(16)
    report = IngestReport(added=25, passages=50, words=2_000, seconds=10.0)
    shown.batch(report)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("newsqa: 0 of 100 articles done, 16 passages, ") and "passages/s" in lines[0]
    assert lines[1] == ("newsqa: 25 of 100 articles done, 50 passages, 5.0 passages/s, 200 words/s, about 30 s left")


def test_a_line_comes_at_most_every_n_seconds() -> None:
    stream = io.StringIO()
    shown = IngestProgress(10, Path("/data"), stream=stream, every=3600, tty=False)
    for _ in range(50):
        shown.passages(1)
    shown.batch(IngestReport(added=10, passages=50, words=500, seconds=1.0))
    assert stream.getvalue() == ""


def test_counts_and_durations() -> None:
    assert (
        format_duration(42) == "42 s" and format_duration(7 * 60) == "7 min" and format_duration(7500) == "2 h 05 min"
    )


def test_count_articles_counts_jsonl_lines(tmp_path: Path) -> None:
    jsonl = _articles(tmp_path / "a.jsonl", 7)
    (tmp_path / "b.txt").write_text("x")
    assert count_articles([jsonl, tmp_path / "b.txt"]) == 8


def test_ingest_without_a_terminal_prints_progress_lines_and_a_summary_with_rates(tmp_path: Path) -> None:
    source = _articles(tmp_path / "ports.jsonl", 70)  # two batches of at most 64
    done = subprocess.run(
        _newsqa("--data-dir", str(tmp_path / "d"), "ingest", "--progress-every", "0.1", str(source)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if " of 70 articles done" in line]
    assert lines and all("passages/s" in line for line in lines), done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    shape = r"70 passages \([\d,]+ words\) in [\d.]+ s \([\d.]+ passages/s, [\d,]+ words/s\)$"
    assert re.search(shape, summary), summary


def test_ingest_on_a_terminal_shows_a_bar(tmp_path: Path) -> None:
    source = _articles(tmp_path / "ports.jsonl", 70)
    master, slave = pty.openpty()  # no window size set: the bar falls back to 100 columns
    process = subprocess.Popen(
        _newsqa("--data-dir", str(tmp_path / "d"), "ingest", str(source)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    screen = b""
    try:  # the slave stays open here until the end: Linux drops unread output once it closes
        while True:
            ready, _, _ = select.select([master], [], [], 0.3)
            if ready:
                screen += os.read(master, 65536)
            elif process.poll() is not None:
                break
    finally:
        process.wait(timeout=300)
        os.close(slave)
        os.close(master)
    assert process.returncode == 0
    text = screen.decode("utf-8", "replace")
    assert "ingesting:" in text and "/70" in text and "articles" in text, text[-2000:]
    assert "passages/s" in text


def test_a_second_writer_says_whom_it_waits_for_and_leaves_the_wait_out_of_its_rates(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    source = _articles(tmp_path / "ports.jsonl", 3)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with writer_lock(data):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    started = time.monotonic()
    process = subprocess.Popen(
        _newsqa("--data-dir", str(data), "ingest", str(source)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)
    release.set()
    out, err = process.communicate(timeout=300)
    total = time.monotonic() - started
    holder.join()
    assert process.returncode == 0, err
    assert f"newsqa: waiting for another newsqa process writing to {data} (pid {os.getpid()})…" in err
    summary = out.strip().splitlines()[-1]
    seconds = float(re.search(r" in ([\d.]+) s ", summary).group(1))  # type: ignore[union-attr]
    waited = float(re.search(r"waited ([\d.]+) s for another writer", summary).group(1))  # type: ignore[union-attr]
    assert waited >= 3.0 and seconds < total - 3.0, (summary, total)
