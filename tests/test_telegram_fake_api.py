"""The fake Bot API itself: it speaks Telegram's protocol and refuses what Telegram refuses."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
)
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter

from tests.fake_bot_api import FakeBotApi
from tests.telegram_fixtures import TOKEN, fake_api_fixture, no_real_telegram_fixture  # noqa: F401

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("no_real_telegram")]
T = TypeVar("T")


def with_bot(api: FakeBotApi, action: Callable[[Bot], Awaitable[T]], token: str = TOKEN) -> T:
    """Run ``action`` with a real PTB Bot pointed at the fake."""

    async def main() -> T:
        async with Bot(token, base_url=api.base_url) as bot:
            return await action(bot)

    return asyncio.run(main())


def raw(api: FakeBotApi, method: str, **data: Any) -> dict[str, Any]:
    response = httpx.post(f"{api.base_url}{TOKEN}/{method}", json=data)
    body: dict[str, Any] = response.json()
    assert body["ok"] == (response.status_code == 200)
    return body


@pytest.fixture
def chat(fake_api: FakeBotApi) -> dict[str, Any]:
    return fake_api.private_chat(fake_api.user(1))


def test_get_me_over_http_with_the_token_in_the_path(fake_api: FakeBotApi) -> None:
    me = with_bot(fake_api, lambda bot: bot.get_me())
    assert me.username == "NewsqaTestBot"
    assert me.is_bot


def test_a_wrong_token_is_unauthorized(fake_api: FakeBotApi) -> None:
    with pytest.raises(InvalidToken):
        with_bot(fake_api, lambda bot: bot.get_me(), token="1:wrong")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("<b>unclosed", "can't find end tag"),
        ("<blink>x</blink>", "unsupported start tag"),
        ("1 < 2", "unsupported start tag"),
        ("fish & chips", "must be escaped"),
        ("<b>x</i>", "unmatched end tag"),
        ('<a href="javascript:x">x</a>', "wrong http url"),
        ("   ", "message text is empty"),
        ("<b></b>", "message text is empty"),
        ("😀" * 2049, "message is too long"),
    ],
)
def test_send_message_refuses_what_telegram_refuses(
    fake_api: FakeBotApi, chat: dict[str, Any], text: str, error: str
) -> None:
    with pytest.raises(BadRequest, match=rf"(?i){error}"):
        with_bot(fake_api, lambda bot: bot.send_message(chat["id"], text, parse_mode="HTML"))


def test_text_of_exactly_4096_utf16_units_is_accepted(fake_api: FakeBotApi, chat: dict[str, Any]) -> None:
    text = "<b>" + "😀" * 2047 + "</b>ab"
    message = with_bot(fake_api, lambda bot: bot.send_message(chat["id"], text, parse_mode="HTML"))
    assert message.entities[0].length == 4094


def test_callback_data_over_64_bytes_is_refused(fake_api: FakeBotApi, chat: dict[str, Any]) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="é" * 33)]])
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        with_bot(fake_api, lambda bot: bot.send_message(chat["id"], "hi", reply_markup=markup))


def test_more_than_50_inline_results_are_refused(fake_api: FakeBotApi) -> None:
    query = fake_api.inline_query(fake_api.user(1), "q")
    results = [InlineQueryResultArticle(str(i), "t", InputTextMessageContent("m")) for i in range(51)]
    with pytest.raises(BadRequest, match=r"(?i)RESULTS_TOO_MUCH"):
        with_bot(fake_api, lambda bot: bot.answer_inline_query(query, results))


def test_a_callback_query_can_be_answered_only_once(fake_api: FakeBotApi, chat: dict[str, Any]) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("b", callback_data="d")]])
    sent = with_bot(fake_api, lambda bot: bot.send_message(chat["id"], "hi", reply_markup=markup))
    query = fake_api.press(fake_api.messages[(chat["id"], sent.message_id)], fake_api.user(1), "b")
    assert with_bot(fake_api, lambda bot: bot.answer_callback_query(query))
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        with_bot(fake_api, lambda bot: bot.answer_callback_query(query))


def test_editing_to_the_same_content_is_not_modified(fake_api: FakeBotApi, chat: dict[str, Any]) -> None:
    sent = with_bot(fake_api, lambda bot: bot.send_message(chat["id"], "<b>same</b>", parse_mode="HTML"))

    async def edit(bot: Bot) -> object:
        return await bot.edit_message_text("<b>same</b>", chat["id"], sent.message_id, parse_mode="HTML")

    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        with_bot(fake_api, edit)


def test_update_ids_are_assigned_by_the_fake_and_confirmed_by_offset(fake_api: FakeBotApi) -> None:
    user = fake_api.user(1)
    for text in ("a", "b", "c"):
        fake_api.send_text(fake_api.private_chat(user), user, text)
    first = raw(fake_api, "getUpdates")["result"]
    ids = [u["update_id"] for u in first]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    assert raw(fake_api, "getUpdates", offset=ids[1] + 1)["result"] == first[2:]
    assert raw(fake_api, "getUpdates", offset=ids[2] + 1)["result"] == []


def test_a_second_poller_terminates_the_first_with_409(fake_api: FakeBotApi) -> None:
    outcome: list[BaseException | None] = []

    def first() -> None:
        try:
            with_bot(fake_api, lambda bot: bot.get_updates(timeout=5))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    fake_api.wait_polling()
    assert raw(fake_api, "getUpdates", timeout=0)["ok"]
    thread.join(10)
    assert isinstance(outcome[0], Conflict)


@pytest.mark.parametrize(
    ("status", "description", "retry_after", "error"),
    [
        (429, "Too Many Requests: retry after 3", 3, RetryAfter),
        (403, "Forbidden: bot was blocked by the user", None, Forbidden),
        (500, "Internal Server Error", None, NetworkError),
        (0, "", None, NetworkError),
    ],
)
def test_injected_faults_reach_ptb_as_its_exceptions(
    fake_api: FakeBotApi,
    chat: dict[str, Any],
    status: int,
    description: str,
    retry_after: int | None,
    error: type[Exception],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    if status:
        fake_api.inject("sendMessage", status, description, retry_after=retry_after)
    else:
        fake_api.drop("sendMessage")
    with pytest.raises(error):
        with_bot(fake_api, lambda bot: bot.send_message(chat["id"], "hi"))
    # The fault was used up: the next call goes through.
    assert with_bot(fake_api, lambda bot: bot.send_message(chat["id"], "hi")).text == "hi"


def test_form_encoded_and_json_bodies_are_both_understood(fake_api: FakeBotApi, chat: dict[str, Any]) -> None:
    markup = json.dumps({"inline_keyboard": [[{"text": "b", "callback_data": "d"}]]})
    form = httpx.post(
        f"{fake_api.base_url}{TOKEN}/sendMessage",
        data={
            "chat_id": str(chat["id"]),
            "text": "<i>x</i>",
            "parse_mode": "HTML",
            "reply_markup": markup,
        },
    ).json()
    body = raw(fake_api, "sendMessage", chat_id=chat["id"], text="y", reply_markup=json.loads(markup))
    assert form["result"]["entities"] == [{"type": "italic", "offset": 0, "length": 1}]
    assert body["result"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "d"


def test_unknown_methods_and_parameters_are_refused(fake_api: FakeBotApi, chat: dict[str, Any]) -> None:
    assert raw(fake_api, "sendRocket")["error_code"] == 404
    assert (
        "unknown parameter" in raw(fake_api, "sendMessage", chat_id=chat["id"], text="x", colour="red")["description"]
    )


def test_requests_through_the_fake_as_a_proxy_are_recorded_as_escapes(fake_api: FakeBotApi) -> None:
    with httpx.Client(proxy=f"http://127.0.0.1:{fake_api.port}") as client:
        response = client.get("http://api.telegram.org/bot1:x/getMe")
    assert response.status_code == 403
    assert fake_api.violations == ["GET http://api.telegram.org/bot1:x/getMe"]
    fake_api.violations.clear()
