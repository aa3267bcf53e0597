"""The database restarts while ``newsqa serve`` runs on it: a kind "try again", then answers again.

The test runs its own PostgreSQL server (the session's is shared by other tests' pools), stops
it while the bot is serving, asks, starts it again, and asks again, without touching the bot.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import running_pg_server
from tests.fake_bot_api import FakeBotApi
from tests.pg_server import PgServer
from tests.serve_fixtures import ServeProcess, ask, free_port, health, wait_until
from tests.telegram_fixtures import TOKEN, fake_api_fixture  # noqa: F401

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

SAMPLE = Path(__file__).resolve().parents[1] / "bot" / "sample" / "articles"
QUESTION = "Who won the cup final?"
ANSWER = "Harbour Town won the National Cup"


@pytest.fixture
def own_server() -> Iterator[PgServer]:
    """A server of this test's own, since it is stopped and started again."""
    yield from running_pg_server()


def test_questions_during_a_database_restart_get_try_again_and_answers_resume(
    fake_api: FakeBotApi, own_server: PgServer, tmp_path: Path
) -> None:
    dsn = own_server.create_database("outage")
    port = free_port()
    config = f'data_dir = "{tmp_path / "data"}"\n[serve]\nhealth_port = {port}\n[storage]\nbackend = "postgres"\n'
    service = ServeProcess(tmp_path, fake_api, config, {"NEWSQA_PG_DSN": dsn})
    assert service.run_cli("ingest", str(SAMPLE)).returncode == 0
    service.start()
    try:
        fake_api.wait_polling(timeout=90)
        assert ANSWER in ask(fake_api, 1001, QUESTION)["text"]
        own_server.halt()
        started = time.monotonic()
        reply = ask(fake_api, 1002, QUESTION, timeout=60)
        waited = time.monotonic() - started
        assert "not available right now. Please try again later" in reply["text"], reply["text"]
        assert ANSWER not in reply["text"]
        body = health(port, timeout=15)
        # The bot runs on (not restarted); its health says why it cannot answer.
        assert body is not None and body["status"] == "failing" and "database" in body["problem"], body
        own_server.resume()
        resumed = time.monotonic()
        replies: list[str] = []

        def answered() -> bool:
            replies.append(ask(fake_api, 1003, QUESTION, timeout=60)["text"])
            return ANSWER in replies[-1]

        wait_until(answered, 60, "answers after the restart", every=0.5)
        print(
            f"outage reply after {waited:.1f} s; answering again {time.monotonic() - resumed:.1f} s after the restart"
        )
        assert (health(port) or {}).get("status") == "ok"
        assert service.stop(signal.SIGTERM) == 0
    finally:
        service.kill()
    log = service.log()
    assert "Traceback" not in log and dsn not in log
    # Each change of the health verdict is logged once; the 503s themselves are not server errors.
    assert log.count("health check failing") == 1 and log.count("health check ok again") == 1, log
    assert "GET /healthz" not in log
    assert fake_api.refusals() == []
