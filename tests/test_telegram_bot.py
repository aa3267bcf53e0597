"""The bot end to end: the real Application over loopback HTTP against the strict fake Bot API."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from bot.telegram.state import STATE_KEY
from retrieval.newsindex import NewsIndex
from tests.fake_bot_api import FakeBotApi
from tests.fake_bot_api_html import utf16_len
from tests.telegram_fixtures import (  # noqa: F401  (fixtures are used by name)
    BotRunner,
    fake_api_fixture,
    no_real_telegram_fixture,
    start_bot_fixture,
    telegram_index_fixture,
    token_not_logged_fixture,
)

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("token_not_logged")]

BOT = "NewsqaTestBot"
ANN = FakeBotApi.user(101, "Ann", "ann")
BEN = FakeBotApi.user(102, "Ben")
CAT = FakeBotApi.user(103, "Cat")
ADMIN = FakeBotApi.user(900, "Ada", "ada")
BRIDGE_Q = "Why was the harbour bridge closed?"

StartBot = Callable[..., BotRunner]


def entity_types(message: dict[str, Any]) -> set[str]:
    return {e["type"] for e in message.get("entities", [])}


def buttons(message: dict[str, Any]) -> list[str]:
    return [b["text"] for row in message.get("reply_markup", {}).get("inline_keyboard", []) for b in row]


def ask_private(api: FakeBotApi, user: dict[str, Any], text: str, count: int = 1) -> list[dict[str, Any]]:
    """Send a private message; return the bot's next ``count`` messages in that chat."""
    before = len(api.sent(user["id"]))
    api.send_text(api.private_chat(user), user, text)
    return api.wait_sent(user["id"], before + count)[before:]


def test_private_question_gets_a_quoted_answer_with_source_link(
    start_bot: StartBot, fake_api: FakeBotApi, telegram_index: NewsIndex
) -> None:
    start_bot()
    [answer] = ask_private(fake_api, ANN, BRIDGE_Q)
    assert {"blockquote", "bold", "text_link"} <= entity_types(answer)
    links = [e["url"] for e in answer["entities"] if e["type"] == "text_link"]
    assert any(u.startswith("https://news.example.org/2024/harbour-bridge#:~:text=") for u in links)
    assert "cracks" in answer["text"]
    assert "Harbour Daily · 4 Mar 2024" in answer["text"]
    assert answer["reply_to_message"]["text"] == BRIDGE_Q
    assert answer["link_preview_options"] == {"is_disabled": True}
    # More when the page is full (k = 3 quotes); quotes of one article that overlap are one quote.
    quotes = sum(1 for e in answer["entities"] if e["type"] == "blockquote")
    assert buttons(answer) == ["👍", "👎"] + (["More ›"] if quotes >= 3 else [])
    # Every bold (marked) sentence is verbatim article text.
    texts = [s.article.text for s in telegram_index.sources(limit=None)]
    units = answer["text"].encode("utf-16-le")
    for bold in (e for e in answer["entities"] if e["type"] == "bold"):
        marked = units[bold["offset"] * 2 : (bold["offset"] + bold["length"]) * 2].decode("utf-16-le")
        assert any(marked in text for text in texts)
    # Every quoted passage is verbatim article text; only a window around the marked sentence
    # is shown, its cuts marked with "…".
    for block in (e for e in answer["entities"] if e["type"] == "blockquote"):
        shown = units[block["offset"] * 2 : (block["offset"] + block["length"]) * 2].decode("utf-16-le")
        pieces = [p for p in shown.split("…") if p.strip()]
        assert pieces
        assert all(any(piece in text for text in texts) for piece in pieces), shown
    assert fake_api.refusals() == []


def test_question_the_articles_do_not_answer_gets_a_kind_not_found_with_a_hint(
    start_bot: StartBot, fake_api: FakeBotApi
) -> None:
    start_bot()
    [reply] = ask_private(fake_api, ANN, "What is the weather like on Mars tonight?")
    assert "found nothing" in reply["text"]
    assert "/sources" in reply["text"]
    assert "reply_markup" not in reply
    assert fake_api.refusals() == []


def test_filters_that_match_no_article_are_named_in_the_reply_and_the_inline_hint(
    start_bot: StartBot, fake_api: FakeBotApi
) -> None:
    start_bot()
    [reply] = ask_private(fake_api, ANN, f"{BRIDGE_Q} source:norland")
    assert "No article I have read matches source:norland" in reply["text"]
    assert "/sources" in reply["text"]
    qid = fake_api.inline_query(ANN, f"{BRIDGE_Q} source:norland")
    fake_api.wait_for("answerInlineQuery")
    answer = fake_api.inline_queries[qid]["answer"]
    assert answer["results"] == [] and answer["button"]["text"] == "No article matches source:norland"
    assert fake_api.refusals() == []


def test_group_ask_addressed_to_the_bot_is_answered(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    start_bot()
    group = fake_api.group(-1001)
    fake_api.send_text(group, ANN, f"/ask@{BOT} Who won the cup final?")
    [answer] = fake_api.wait_sent(-1001)
    assert "Riverside United won the cup final" in answer["text"]


def test_group_mention_is_answered_as_the_question_without_the_mention(
    start_bot: StartBot, fake_api: FakeBotApi, telegram_index: NewsIndex
) -> None:
    start_bot()
    group = fake_api.group(-1002)
    fake_api.send_text(group, ANN, f"@{BOT}, who won the cup final?")
    [answer] = fake_api.wait_sent(-1002)
    assert "Riverside" in answer["text"]
    qid = int(answer["reply_markup"]["inline_keyboard"][0][0]["callback_data"].split(":")[1])
    assert telegram_index.get_question(qid) == "who won the cup final?"


def test_group_reply_to_a_bot_message_is_answered(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    start_bot()
    group = fake_api.group(-1003)
    fake_api.send_text(group, ANN, f"/ask@{BOT} Who won the cup final?")
    [first] = fake_api.wait_sent(-1003)
    fake_api.send_text(group, BEN, "How much dust did the asteroid probe collect?", reply_to=first)
    second = fake_api.wait_sent(-1003, 2)[1]
    assert "sixty grams" in second["text"]


def test_group_chatter_and_commands_for_other_bots_are_ignored(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    start_bot()
    group = fake_api.group(-1004)
    for text in [
        "Who won the cup final?",
        "/ask@OtherBot Who won the cup final?",
        "@somebody did you see the bridge news?",
        "/help@OtherBot",
    ]:
        fake_api.send_text(group, ANN, text)
    fake_api.send_text(group, BEN, f"/ask@{BOT} What did the central bank decide?")
    messages = fake_api.wait_sent(-1004)
    assert len(messages) == 1
    assert "4.5 percent" in messages[0]["text"]
    assert messages[0]["reply_to_message"]["from"]["id"] == BEN["id"]


def test_inline_query_offers_the_top_quotes_with_source_and_link(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    start_bot()
    qid = fake_api.inline_query(ANN, BRIDGE_Q)
    fake_api.wait_for("answerInlineQuery")
    answer = fake_api.inline_queries[qid]["answer"]
    results = answer["results"]
    assert 1 <= len(results) <= 5
    assert answer["cache_time"] == 300
    assert "https://news.example.org/2024/harbour-bridge" in [r["url"] for r in results]
    for result in results:
        assert result["title"]
        assert result["description"]
        assert "<blockquote>" in result["input_message_content"]["message_text"]
        assert "#:~:text=" in result["input_message_content"]["message_text"]
    # A full page promises more; a short one (later quotes below the relevance floor) does not.
    assert answer["next_offset"] == ("5" if len(results) == 5 else "")
    assert fake_api.refusals() == []


def test_empty_inline_query_gets_a_short_hint(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    start_bot()
    qid = fake_api.inline_query(ANN, "   ")
    fake_api.wait_for("answerInlineQuery")
    answer = fake_api.inline_queries[qid]["answer"]
    assert answer["results"] == []
    assert answer["button"]["start_parameter"] == "help"
    assert "question" in answer["button"]["text"]


def test_more_sends_the_next_quotes_for_the_same_question(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    start_bot(search={"k": 2})
    [first] = ask_private(fake_api, ANN, "What did witnesses tell the bridge inquiry?")
    query = fake_api.press(first, ANN, "More ›")
    fake_api.wait_for("answerCallbackQuery")
    second = fake_api.wait_sent(ANN["id"], 2)[1]
    assert fake_api.callback_queries[query]["answered"]
    assert second["text"].startswith("More on “What did witnesses tell the bridge inquiry?”")
    assert second["text"] != first["text"]
    first_links = {e["url"] for e in first["entities"] if e["type"] == "text_link"}
    second_links = {e["url"] for e in second["entities"] if e["type"] == "text_link"}
    assert not first_links & second_links
    # The pressed message keeps its feedback buttons but hands "More" on to the new one.
    fake_api.wait_for("editMessageReplyMarkup")
    assert buttons(fake_api.sent(ANN["id"])[0]) == ["👍", "👎"]
    assert "👍" in buttons(second)
    assert fake_api.refusals() == []


def test_feedback_is_stored_with_question_quote_ids_and_chat(
    start_bot: StartBot, fake_api: FakeBotApi, telegram_index: NewsIndex
) -> None:
    start_bot()
    [answer] = ask_private(fake_api, BEN, "Who won the cup final?")
    query = fake_api.press(answer, BEN, "👎")
    fake_api.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == query)
    assert fake_api.callback_queries[query]["answer"]["text"] == "Thanks for the feedback!"
    qid = int(answer["reply_markup"]["inline_keyboard"][0][1]["callback_data"].split(":")[1])
    if telegram_index.config.storage.backend == "postgres":
        with telegram_index.backend.store.connection() as con:  # type: ignore[attr-defined]
            row = con.execute(
                "SELECT value, chat_id, user_id, passage_ids FROM feedback WHERE question_id = %s", (qid,)
            ).fetchone()
            shown = con.execute("SELECT passage_ids FROM questions WHERE id = %s", (qid,)).fetchone()
        stored, asked = row[3], shown[0]
    else:
        db = sqlite3.connect(telegram_index.config.data_path / "newsqa.sqlite3")
        row = db.execute(
            "SELECT value, chat_id, user_id, passage_ids FROM feedback WHERE question_id = ?", (qid,)
        ).fetchone()
        shown = db.execute("SELECT passage_ids FROM questions WHERE id = ?", (qid,)).fetchone()
        db.close()
        stored, asked = json.loads(row[3]), json.loads(shown[0])
    assert tuple(row[:3]) == (-1, BEN["id"], BEN["id"])
    assert stored == asked != []
    fake_api.wait_for("editMessageReplyMarkup")
    assert buttons(fake_api.sent(BEN["id"])[-1])[:2] == ["👍", "👎 ✓"]


def test_pressing_the_same_feedback_twice_counts_once_and_answers_both_presses(
    start_bot: StartBot, fake_api: FakeBotApi, telegram_index: NewsIndex
) -> None:
    start_bot()
    [answer] = ask_private(fake_api, CAT, "Who won the cup final?")
    before = telegram_index.usage().feedback_up
    first = fake_api.press(answer, CAT, "👍")
    fake_api.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == first)
    second = fake_api.press(fake_api.sent(CAT["id"])[-1], CAT, "👍 ✓")
    fake_api.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == second)
    assert fake_api.callback_queries[second]["answer"]["text"] == "Already noted, thank you!"
    assert telegram_index.usage().feedback_up == before + 1
    assert fake_api.refusals() == []


def test_allowlist_refuses_others_once_then_stays_silent(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    start_bot(allowed_users=(ANN["id"],), allowed_chats=(-1005,))
    [refusal] = ask_private(fake_api, BEN, "Who won the cup final?")
    assert "private" in refusal["text"]
    fake_api.send_text(fake_api.private_chat(BEN), BEN, "Who won the cup final? Please?")
    # The allowed user and the allowed group (any member) are answered; the refused user
    # was told once.
    ask_private(fake_api, ANN, "Who won the cup final?")
    fake_api.send_text(fake_api.group(-1005), CAT, f"/ask@{BOT} Who won the cup final?")
    fake_api.wait_sent(-1005)
    assert len(fake_api.sent(BEN["id"])) == 1


def test_rate_limit_tells_a_fast_user_once_then_ignores_them(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    start_bot(rate_limit=2)
    ask_private(fake_api, ANN, "Who won the cup final?")
    ask_private(fake_api, ANN, "What did the central bank decide?")
    [slow_down] = ask_private(fake_api, ANN, "How much dust did the probe collect?")
    assert "faster than I can read" in slow_down["text"]
    assert "wait" in slow_down["text"]
    fake_api.send_text(fake_api.private_chat(ANN), ANN, "Why was the bridge closed?")
    # Another user is not limited by Ann's questions; Ann got no fourth reply.
    ask_private(fake_api, BEN, "Who won the cup final?")
    assert len(fake_api.sent(ANN["id"])) == 3


def test_overlong_question_gets_a_clear_message(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    start_bot(max_question_chars=50)
    [reply] = ask_private(fake_api, ANN, "Why " + "really " * 20 + "was the bridge closed?")
    assert "characters long" in reply["text"]
    assert "under 50" in reply["text"]


def test_admin_commands_are_refused_to_others_and_served_to_admins(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    start_bot(admins=(ADMIN["id"],))
    for command in ("/stats", "/add https://example.org/x", "/remove abc"):
        [refusal] = ask_private(fake_api, ANN, command)
        assert "only for the bot's admins" in refusal["text"]
    [stats] = ask_private(fake_api, ADMIN, "/stats")
    assert "Questions:" in stats["text"]
    assert "Not found:" in stats["text"]
    assert "👍" in stats["text"]
    # /add goes through the web fetcher's safety rules (tests/test_service_ingest.py covers a real add).
    [add] = ask_private(fake_api, ADMIN, "/add http://127.0.0.1:9/article")
    assert "loopback address; refused" in add["text"]
    [missing] = ask_private(fake_api, ADMIN, "/remove no-such-article")
    assert "No stored article" in missing["text"]


def test_admin_removes_an_article_by_url(
    fake_api: FakeBotApi,
    make_index: Callable[..., NewsIndex],
    tmp_path: Any,
    no_real_telegram: list[str],
) -> None:
    from tests.telegram_fixtures import bot_config, telegram_articles

    index = make_index("removable")
    index.ingest(telegram_articles()[3:5])
    runner = BotRunner(bot_config(fake_api, index, tmp_path, admins=(ADMIN["id"],)), index, fake_api).start()
    try:
        [done] = ask_private(fake_api, ADMIN, "/remove https://sport.example.com/cup-final")
        assert done["text"] == "Removed Riverside win the cup."
        assert [s.article.title for s in index.sources()] == ["Central bank raises rates to 4.5%"]
    finally:
        runner.stop()


def test_sources_lists_recent_articles_and_pages_with_buttons(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    runner = start_bot()
    state = runner.app.bot_data[STATE_KEY]
    state.settings = dataclasses.replace(state.settings, sources_page=2)
    [page1] = ask_private(fake_api, ANN, "/sources")
    assert page1["text"].startswith("Articles I have read, newest first (1–2)")
    assert buttons(page1) == ["Older ›"]
    fake_api.press(page1, ANN, "Older ›")
    fake_api.wait_for("editMessageText")
    page2 = fake_api.sent(ANN["id"])[-1]
    assert "(3–4)" in page2["text"]
    assert buttons(page2) == ["‹ Newer", "Older ›"]
    fake_api.wait_for("answerCallbackQuery")
    assert fake_api.refusals() == []


def test_about_tells_index_size_model_and_last_update(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    start_bot()
    [about] = ask_private(fake_api, ANN, "/about")
    assert "8 articles" in about["text"]
    assert "all-MiniLM-L6-v2" in about["text"]
    assert "Last update:" in about["text"]


def test_start_greets_and_a_deep_link_payload_is_a_question(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    start_bot()
    [hello] = ask_private(fake_api, ANN, "/start")
    assert "Hello" in hello["text"]
    [answer] = ask_private(fake_api, BEN, "/start who_won_the_cup_final")
    assert "Riverside" in answer["text"]
    [helptext] = ask_private(fake_api, CAT, "/start help")
    assert "/sources" in helptext["text"]


def test_help_lists_admin_commands_only_to_admins(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    start_bot(admins=(ADMIN["id"],))
    [for_user] = ask_private(fake_api, ANN, "/help")
    [for_admin] = ask_private(fake_api, ADMIN, "/help")
    assert "/remove" not in for_user["text"]
    assert "/remove" in for_admin["text"]


def test_commands_are_registered_for_private_chats_groups_and_admins(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    fake_api.private_chat(ADMIN)  # the admin has talked to the bot before
    start_bot(admins=(ADMIN["id"], 901))
    private = [c["command"] for c in fake_api.commands_for("default")]
    groups = [c["command"] for c in fake_api.commands_for("all_group_chats")]
    admin = [c["command"] for c in fake_api.commands_for("chat", chat_id=ADMIN["id"])]
    assert private == ["start", "ask", "sources", "about", "help"]
    assert groups == ["ask", "sources", "about", "help"]
    assert {"add", "remove", "stats"} <= set(admin)
    # Admin 901 never started the bot: Telegram refuses that scope and the bot carries on.
    assert [c.description for c in fake_api.refusals()] == ["Bad Request: chat not found"]


def test_only_the_update_types_the_bot_handles_are_requested(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    start_bot()
    ask_private(fake_api, ANN, "Who won the cup final?")
    asked = [c.params["allowed_updates"] for c in fake_api.calls if c.method == "getupdates"]
    assert asked[0] == ["message", "callback_query", "inline_query", "my_chat_member"]


def test_markup_in_articles_and_questions_is_shown_as_text_and_accepted(
    start_bot: StartBot, fake_api: FakeBotApi
) -> None:
    start_bot()
    [answer] = ask_private(fake_api, ANN, "<b>What did the café owner write</b> on the <i>menu</i>? & <script>")
    assert "<script>alert('hi')</script>" in answer["text"]
    assert "&amp; &lt;open&gt; in neon 🔆" in answer["text"]
    assert "<b>Prices</b> & pain 😀" in answer["text"]
    assert "Tags & <Co>" in answer["text"]
    qid = fake_api.inline_query(ANN, "<b>café</b> & <i>menu")
    fake_api.wait_for("answerInlineQuery")
    assert fake_api.inline_queries[qid]["answer"]["results"]
    assert fake_api.refusals() == []


def test_answer_longer_than_one_message_arrives_as_several_valid_messages(
    start_bot: StartBot, fake_api: FakeBotApi
) -> None:
    start_bot(search={"k": 8}, quote_chars=2500)
    question = "What did witnesses tell the harbour bridge inquiry about the hangers?"
    fake_api.send_text(fake_api.private_chat(ANN), ANN, question)
    fake_api.wait_sent(ANN["id"], 2)
    messages = fake_api.sent(ANN["id"])
    assert len(messages) >= 2
    assert all(utf16_len(m["text"]) <= 4096 for m in messages)
    assert sum(utf16_len(m["text"]) for m in messages) > 4096
    # Only the last message carries the buttons; only the first replies to the question.
    assert ["reply_markup" in m for m in messages] == [False] * (len(messages) - 1) + [True]
    assert "reply_to_message" in messages[0]
    assert "reply_to_message" not in messages[1]
    assert fake_api.refusals() == []


def test_photos_in_private_get_a_text_only_note(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    start_bot()
    chat = fake_api.private_chat(ANN)
    fake_api.push(
        "message",
        {
            "message_id": 77,
            "from": ANN,
            "chat": chat,
            "date": 1_700_000_000,
            "photo": [{"file_id": "x", "file_unique_id": "y", "width": 1, "height": 1}],
        },
    )
    [note] = fake_api.wait_sent(ANN["id"])
    assert "only read text" in note["text"]


def test_admins_are_not_rate_limited(start_bot: StartBot, fake_api: FakeBotApi) -> None:
    start_bot(rate_limit=1, admins=(ADMIN["id"],))
    for question in ("Who won the cup final?", "What did the central bank decide?"):
        [answer] = ask_private(fake_api, ADMIN, question)
        assert "faster than I can read" not in answer["text"]
