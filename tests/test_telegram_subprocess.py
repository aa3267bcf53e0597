"""`newsqa bot` as a real process: started through its entry point, talking only to the fake."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retrieval.newsindex import NewsIndex
from tests.fake_bot_api import FakeBotApi
from tests.telegram_fixtures import TOKEN, fake_api_fixture, telegram_index_fixture  # noqa: F401

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


def newsqa_command() -> list[str]:
    script = Path(sys.executable).with_name("newsqa")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]


def test_newsqa_bot_answers_through_the_fake_and_stops_on_sigterm(
    fake_api: FakeBotApi, telegram_index: NewsIndex, tmp_path: Path
) -> None:
    proxy = f"http://127.0.0.1:{fake_api.port}"
    env = {
        **os.environ,
        "NEWSQA_TELEGRAM_TOKEN": TOKEN,
        "NEWSQA_TELEGRAM_BASE_URL": fake_api.base_url,
        # Anything that tries another host goes to the fake, which records it as an escape.
        "HTTP_PROXY": proxy,
        "HTTPS_PROXY": proxy,
        "ALL_PROXY": proxy,
        "NO_PROXY": "127.0.0.1,localhost",
        "HF_HUB_OFFLINE": "1",
        "NEWSQA_CONFIG": str(tmp_path / "none.toml"),
    }
    (tmp_path / "none.toml").write_text("", encoding="utf-8")
    if telegram_index.config.storage.backend == "postgres":
        env.update(NEWSQA_STORAGE_BACKEND="postgres", NEWSQA_PG_DSN=telegram_index.config.storage.dsn.reveal())
    stderr = tmp_path / "stderr.log"
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [*newsqa_command(), "-vv", "--data-dir", str(telegram_index.config.data_path), "bot"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            fake_api.wait_polling(timeout=60)
            user = fake_api.user(501)
            fake_api.send_text(fake_api.private_chat(user), user, "Who won the cup final?")
            [answer] = fake_api.wait_sent(501, timeout=30)
            assert "Riverside" in answer["text"]
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    log = stderr.read_text(encoding="utf-8", errors="replace")
    assert TOKEN.split(":")[1] not in log
    assert "Traceback" not in log
    assert fake_api.refusals() == []
    # The final getUpdates confirmed the update: nothing is left for the next run.
    assert fake_api.pending_updates() == 0


def test_newsqa_bot_waits_for_an_unreachable_telegram_and_answers_when_it_is_back(
    fake_api: FakeBotApi, telegram_index: NewsIndex, tmp_path: Path
) -> None:
    fake_api.go_down()
    (tmp_path / "none.toml").write_text("", encoding="utf-8")
    env = {
        **os.environ,
        "NEWSQA_TELEGRAM_TOKEN": TOKEN,
        "NEWSQA_TELEGRAM_BASE_URL": fake_api.base_url,
        "NO_PROXY": "127.0.0.1,localhost",
        "NEWSQA_CONFIG": str(tmp_path / "none.toml"),
    }
    if telegram_index.config.storage.backend == "postgres":
        env.update(NEWSQA_STORAGE_BACKEND="postgres", NEWSQA_PG_DSN=telegram_index.config.storage.dsn.reveal())
    stderr = tmp_path / "stderr.log"
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [*newsqa_command(), "--data-dir", str(telegram_index.config.data_path), "bot"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            deadline = time.monotonic() + 60
            while "Telegram cannot be reached yet" not in stderr.read_text(errors="replace"):
                assert process.poll() is None and time.monotonic() < deadline, stderr.read_text(errors="replace")
                time.sleep(0.2)
            fake_api.come_back()
            fake_api.wait_polling(timeout=60)
            user = fake_api.user(502)
            fake_api.send_text(fake_api.private_chat(user), user, "Who won the cup final?")
            [answer] = fake_api.wait_sent(502, timeout=30)
            assert "Riverside" in answer["text"]
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    log = stderr.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log and TOKEN.split(":")[1] not in log
    assert log.count("Telegram cannot be reached yet") == 1


def test_newsqa_bot_with_a_token_telegram_refuses_says_so_without_showing_it(
    fake_api: FakeBotApi, telegram_index: NewsIndex, tmp_path: Path
) -> None:
    (tmp_path / "none.toml").write_text("", encoding="utf-8")
    env = {
        **os.environ,
        "NEWSQA_TELEGRAM_TOKEN": "999:NOT-THE-RIGHT-ONE",
        "NEWSQA_TELEGRAM_BASE_URL": fake_api.base_url,
        "NO_PROXY": "127.0.0.1,localhost",
        "NEWSQA_CONFIG": str(tmp_path / "none.toml"),
    }
    if telegram_index.config.storage.backend == "postgres":
        env.update(NEWSQA_STORAGE_BACKEND="postgres", NEWSQA_PG_DSN=telegram_index.config.storage.dsn.reveal())
    done = subprocess.run(
        [*newsqa_command(), "--data-dir", str(telegram_index.config.data_path), "bot"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "NOT-THE-RIGHT-ONE" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("newsqa: Telegram refused the bot token")
