"""The bot under Telegram's errors and load: 429, 403, dropped connections, 5xx, 409, many users."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from tests.fake_bot_api import FakeBotApi
from tests.telegram_fixtures import (  # noqa: F401  (fixtures are used by name)
    TOKEN,
    BotRunner,
    fake_api_fixture,
    no_real_telegram_fixture,
    start_bot_fixture,
    telegram_index_fixture,
    token_not_logged_fixture,
)

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("token_not_logged")]

StartBot = Callable[..., BotRunner]
CUP = "Who won the cup final?"


def sends_to(api: FakeBotApi, chat_id: int) -> list[int]:
    """Return the statuses of every sendMessage to a chat (0 = connection dropped)."""
    return [c.status for c in api.calls if c.method == "sendmessage" and c.params.get("chat_id") == chat_id]


def test_flood_wait_429_is_waited_out_then_the_answer_is_sent(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    start_bot()
    fake_api.inject("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    user = fake_api.user(201)
    fake_api.send_text(fake_api.private_chat(user), user, CUP)
    [answer] = fake_api.wait_sent(201)
    assert "Riverside" in answer["text"]
    calls = [c for c in fake_api.calls if c.method == "sendmessage"]
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 1.0


def test_blocked_user_403_stops_writes_to_that_chat_while_others_are_served(
    start_bot: StartBot, fake_api: FakeBotApi
) -> None:
    start_bot()
    blocker, other = fake_api.user(202), fake_api.user(203)
    fake_api.blocked.add(202)
    fake_api.send_text(fake_api.private_chat(blocker), blocker, CUP)
    fake_api.wait_for("sendMessage", lambda c: c.params.get("chat_id") == 202, ok=False)
    fake_api.send_text(fake_api.private_chat(other), other, CUP)
    fake_api.wait_sent(203)
    # The bot learned from the 403: it does not try the blocked chat again on its own...
    assert sends_to(fake_api, 202) == [403]
    # ...and when the user unblocks and writes again, it answers again.
    fake_api.blocked.discard(202)
    fake_api.send_text(fake_api.private_chat(blocker), blocker, CUP)
    fake_api.wait_sent(202)
    assert sends_to(fake_api, 202) == [403, 200]


def test_kicked_from_a_group_the_bot_stops_writing_there(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    start_bot()
    group = fake_api.group(-2001)
    admin = fake_api.user(204)
    fake_api.member_update(group, admin, "member", "kicked")
    fake_api.wait_for("getUpdates", lambda c: any("my_chat_member" in u for u in c.result or []))
    fake_api.send_text(fake_api.private_chat(admin), admin, CUP)
    fake_api.wait_sent(204)
    assert sends_to(fake_api, -2001) == []


def test_dropped_connection_is_retried_and_the_bot_keeps_serving(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    start_bot()
    fake_api.drop("sendMessage")
    user = fake_api.user(205)
    fake_api.send_text(fake_api.private_chat(user), user, CUP)
    [answer] = fake_api.wait_sent(205)
    assert "Riverside" in answer["text"]
    assert sends_to(fake_api, 205) == [0, 200]
    fake_api.send_text(fake_api.private_chat(user), user, "What did the central bank decide?")
    assert "4.5 percent" in fake_api.wait_sent(205, 2)[1]["text"]


def test_server_errors_are_retried_with_backoff(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    start_bot()
    fake_api.inject("sendMessage", 500, "Internal Server Error", times=2)
    user = fake_api.user(206)
    fake_api.send_text(fake_api.private_chat(user), user, CUP)
    fake_api.wait_sent(206)
    assert sends_to(fake_api, 206) == [500, 500, 200]


def test_polling_survives_a_dropped_connection_and_a_bad_gateway(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    fake_api.drop("getUpdates")
    fake_api.inject("getUpdates", 502, "Bad Gateway")
    start_bot()
    user = fake_api.user(207)
    fake_api.send_text(fake_api.private_chat(user), user, CUP)
    fake_api.wait_sent(207, timeout=20)
    statuses = [c.status for c in fake_api.calls if c.method == "getupdates"]
    assert statuses[:3] == [0, 502, 200]


def test_message_not_modified_is_ignored_and_both_presses_are_answered(
    start_bot: StartBot, fake_api: FakeBotApi
) -> None:
    start_bot()
    group = fake_api.group(-2002)
    ann, ben = fake_api.user(208), fake_api.user(209)
    fake_api.send_text(group, ann, "/ask@NewsqaTestBot " + CUP)
    [answer] = fake_api.wait_sent(-2002)
    first = fake_api.press(answer, ann, "👍")
    fake_api.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == first)
    # Ben agrees: the keyboard would not change, Telegram says "not modified", the bot shrugs.
    second = fake_api.press(fake_api.sent(-2002)[0], ben, "👍 ✓")
    fake_api.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == second)
    assert [c.description.split(":")[1].strip() for c in fake_api.refusals()] == ["message is not modified"]
    assert len(fake_api.sent(-2002)) == 1  # no apology sent for it


def test_a_second_poller_gets_409_and_the_bot_keeps_serving(
    start_bot: StartBot, fake_api: FakeBotApi, caplog: pytest.LogCaptureFixture
) -> None:
    start_bot()
    # Another process polls with the same token: the bot's waiting long poll is terminated.
    response = httpx.post(f"{fake_api.base_url}{TOKEN}/getUpdates", data={"timeout": "0"})
    assert response.json()["ok"] is True
    fake_api.wait_for("getUpdates", lambda c: c.status == 409, ok=False)
    user = fake_api.user(210)
    fake_api.send_text(fake_api.private_chat(user), user, CUP)
    fake_api.wait_sent(210, timeout=20)


def test_fifty_questions_from_ten_users_at_once_are_all_answered(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    start_bot(rate_limit=0)
    questions = [
        CUP,
        "What did the central bank decide?",
        "How much dust did the probe collect?",
        "Why was the harbour bridge closed?",
        "What did the café owner write?",
    ]
    users = [fake_api.user(300 + i) for i in range(10)]
    for n in range(5):
        for user in users:
            fake_api.send_text(fake_api.private_chat(user), user, questions[n])
    for user in users:
        replies = fake_api.wait_sent(user["id"], 5, timeout=60)
        assert len(replies) == 5
    assert fake_api.refusals() == []


def test_token_stays_out_of_logs_even_with_httpx_at_debug(
    fake_api: FakeBotApi,
    telegram_index: object,
    tmp_path: object,
    caplog: pytest.LogCaptureFixture,
    no_real_telegram: list[str],
) -> None:
    from tests.telegram_fixtures import bot_config

    httpx_logger = logging.getLogger("httpx")
    old = httpx_logger.level
    caplog.set_level(logging.DEBUG)
    try:
        runner = BotRunner(bot_config(fake_api, telegram_index, tmp_path), telegram_index, fake_api)  # type: ignore[arg-type]
        httpx_logger.setLevel(logging.DEBUG)  # as if someone turned it back on
        runner.start()
        user = fake_api.user(211)
        fake_api.send_text(fake_api.private_chat(user), user, CUP)
        fake_api.wait_sent(211)
        runner.stop()
    finally:
        httpx_logger.setLevel(old)
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert any("/bot<token>/sendMessage" in line for line in lines)
    assert not any(TOKEN.split(":")[1] in line for line in lines)


def test_handlers_run_concurrently_off_the_event_loop(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    runner = start_bot(rate_limit=0)
    index = runner.app.bot_data["newsqa"].service.index
    slow_started = threading.Event()
    real_ask = index.ask

    def slow_ask(question: str, *args: object, **kwargs: object) -> object:
        if question.startswith("slow"):
            slow_started.set()
            time.sleep(1.5)  # a stuck embedding must not hold up anyone else
        return real_ask(question, *args, **kwargs)

    index.ask = slow_ask
    try:
        slow, quick = fake_api.user(212), fake_api.user(213)
        fake_api.send_text(fake_api.private_chat(slow), slow, "slow: " + CUP)
        assert slow_started.wait(5)
        started = time.monotonic()
        fake_api.send_text(fake_api.private_chat(quick), quick, CUP)
        fake_api.wait_sent(213)
        assert time.monotonic() - started < 1.2
        assert fake_api.sent(212) == []
        fake_api.wait_sent(212)
    finally:
        del index.ask
