"""Rendering answers as Telegram HTML, and the pure parts of the bot: buttons, mentions, limits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from telegram import MessageEntity

from bot.telegram.access import Access, RateLimiter
from bot.telegram.addressing import mentions_bot, question_from_payload, strip_mentions
from bot.telegram.callbacks import MAX_CALLBACK_BYTES, Feedback, More, SourcesPage, decode, encode
from bot.telegram.render import render_answer, render_not_found, render_quote, safe_url, utf16_len
from retrieval.domain import Answer, Article, Quote
from tests.fake_bot_api_html import HtmlError, parse_html

NASTY = "<b>Sea & Sky</b> 🌊 < 5% & > 3% <script>x</script> &amp; 👩‍👩‍👧‍👦 #<3"


def article(text: str = NASTY, **kw: object) -> Article:
    fields: dict[str, object] = {
        "id": "a1",
        "url": "https://example.org/a?x=1&y=<2>",
        "text": text,
        "title": "<i>Title</i> & more 😀",
        "source": "Outlet & <Co>",
        "published": datetime(2024, 5, 6, tzinfo=UTC),
    }
    fields.update(kw)
    return Article(**fields)  # type: ignore[arg-type]


def quote(text: str = NASTY, highlight: tuple[int, int] = (0, 16), **kw: object) -> Quote:
    a = kw.pop("article", None) or article(text)
    return Quote(
        text=text,
        start=0,
        end=len(text),
        highlight=highlight,
        score=0.9,
        link="https://example.org/a#:~:text=Sea%20%26%20Sky",
        article=a,  # type: ignore[arg-type]
        passage_id=int(kw.pop("passage_id", 1)),  # type: ignore[call-overload]
        **kw,  # type: ignore[arg-type]
    )


def test_article_and_question_text_is_escaped_and_shown_verbatim() -> None:
    [html] = render_answer(Answer("<b>q</b>", (quote(),), True)).messages
    parsed = parse_html(html)
    assert NASTY in parsed.text
    assert "<i>Title</i> & more 😀" in parsed.text
    assert "Outlet & <Co> · 6 May 2024" in parsed.text


def test_marked_sentence_is_bold_inside_the_blockquote_with_a_link_under_it() -> None:
    [html] = render_answer(Answer("q", (quote(),), True)).messages
    parsed = parse_html(html)
    kinds = {e["type"]: e for e in parsed.entities}
    bold = kinds["bold"]
    units = parsed.text.encode("utf-16-le")
    assert units[bold["offset"] * 2 : (bold["offset"] + bold["length"]) * 2].decode("utf-16-le") == NASTY[:16]
    assert kinds["blockquote"]["offset"] == 0
    assert kinds["text_link"]["url"] == "https://example.org/a#:~:text=Sea%20%26%20Sky"


def test_not_found_is_kind_and_points_to_sources() -> None:
    html = render_not_found(Answer("<script>why?</script>", (), False, "not found"))
    parsed = parse_html(html)
    assert "<script>why?</script>" in parsed.text
    assert "/sources" in parsed.text


def test_long_answers_split_between_quotes_and_each_part_fits() -> None:
    quotes = tuple(quote("word " * 400 + "end.", (0, 50), passage_id=i) for i in range(12))
    rendered = render_answer(Answer("q", quotes, True), quote_chars=2000)
    assert len(rendered.messages) > 1
    for html in rendered.messages:
        parsed = parse_html(html)
        assert parsed.units <= 4096
        # Whole quotes only: every blockquote has its source link after it.
        assert html.count("<blockquote>") == html.count("<a href=")


def test_long_passage_is_cut_around_the_marked_sentence() -> None:
    text = "Before. " * 200 + "The marked sentence is here. " + "After. " * 200
    start = text.index("The marked")
    q = quote(text, (start, start + len("The marked sentence is here.")))
    parsed = parse_html(render_quote(q, quote_chars=300))
    assert "The marked sentence is here." in parsed.text
    assert parsed.text.startswith("…")
    assert parsed.units < 500


def test_link_preview_is_off_unless_first_is_asked_for() -> None:
    answer = Answer("q", (quote(),), True)
    assert render_answer(answer).preview_url is None
    assert render_answer(answer, preview="first").preview_url == "https://example.org/a?x=1&y=%3C2%3E"


def test_unusable_urls_are_not_linked() -> None:
    assert safe_url("javascript:alert(1)") is None
    assert safe_url("https://exa mple.org") is None
    assert safe_url("ftp://example.org/x") is None
    a = article(url="not a url")
    q = Quote("text", 0, 4, (0, 4), 1.0, "also not a url", a, 1)
    html = render_quote(q)
    assert "<a " not in html
    parse_html(html)


def test_also_in_lists_other_outlets_with_links() -> None:
    others = tuple(article(id=f"o{i}", source=f"Other {i}", url=f"https://o{i}.example.org/") for i in range(5))
    html = render_quote(quote(also_in=others))
    parsed = parse_html(html)
    assert "Also in: Other 0, Other 1, Other 2 and 2 more" in parsed.text


# Any characters (lone surrogates included) mixed with markup and long runs of words.
texts = st.lists(
    st.characters(max_codepoint=0x1FAFF)
    | st.sampled_from(["<", ">", "&", "<b>", "</i>", "&amp;", "👩‍👩‍👧‍👦", "\n", "\x00", "\ud83d"])
    | st.sampled_from(["word ", "sentence. ", "x" * 700]),
    max_size=400,
).map("".join)


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    quotes = []
    for i in range(draw(st.integers(0, 12))):
        text = draw(texts.filter(lambda t: t.strip()))
        a, b = sorted((draw(st.integers(0, len(text))), draw(st.integers(0, len(text)))))
        art = article(
            text,
            title=draw(st.none() | texts),
            source=draw(st.none() | texts),
            url=draw(st.sampled_from(["https://example.org/x", "http://ex.org/<&>", "bad", ""])),
        )
        quotes.append(
            Quote(
                text,
                0,
                len(text),
                (a, b),
                1.0,
                draw(st.sampled_from(["", art.url, "https://x.org/#:~:text=a"])),
                art,
                i,
            )
        )
    return Answer(draw(texts), tuple(quotes), bool(quotes))


@settings(max_examples=150, deadline=None)
@given(answers(), st.sampled_from([200, 800, 5000]))
def test_rendered_messages_always_parse_and_fit(answer: Answer, quote_chars: int) -> None:
    rendered = render_answer(answer, quote_chars=quote_chars, header=answer.question)
    assert rendered.messages
    for html in rendered.messages:
        try:
            parsed = parse_html(html)
        except HtmlError as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"{exc}: {html[:300]!r}")
        assert 0 < parsed.units <= 4096
        html.encode("utf-8")  # no lone surrogates reach the wire


@given(st.text(max_size=5000))
def test_utf16_length_counts_astral_characters_twice(text: str) -> None:
    assert utf16_len(text) == len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def test_callback_data_round_trips_within_64_bytes() -> None:
    big = 10**18
    for data in (More(big, big), Feedback(big, big, 1), Feedback(1, 0, -1), SourcesPage(big)):
        text = encode(data)
        assert len(text.encode()) <= MAX_CALLBACK_BYTES
        assert decode(text) == data
    for junk in (None, "", "x", "m:1", "m:a:b", "f:1:2:x", "s:-1", "m:1:2:3"):
        assert decode(junk) is None


def test_mentions_of_the_bot_are_found_and_removed_with_utf16_offsets() -> None:
    text = "😀😀 @NewsqaBot, who won? cc @other"
    entities = [MessageEntity("mention", 5, 10), MessageEntity("mention", 28, 6)]
    assert mentions_bot(text, entities, "newsqabot")
    assert not mentions_bot(text, entities[1:], "newsqabot")
    assert strip_mentions(text, entities, "NewsqaBot") == "😀😀 , who won? cc @other"
    assert strip_mentions("@NewsqaBot: why?", [MessageEntity("mention", 0, 10)], "NewsqaBot") == "why?"


def test_deep_link_payloads_become_questions() -> None:
    assert question_from_payload("who_won_the_cup") == "who won the cup"
    assert question_from_payload("covid-19_rules") == "covid-19 rules"
    assert question_from_payload("bad payload!") is None


def test_allowlist_admits_listed_chats_users_and_admins_and_refuses_once() -> None:
    access = Access(frozenset({-1}), frozenset({7}), frozenset({9}))
    assert access.allows(-1, 5)
    assert access.allows(3, 7)
    assert access.allows(3, 9)
    assert not access.allows(3, 5)
    assert access.first_refusal(3)
    assert not access.first_refusal(3)
    assert Access().allows(123, 456)


def test_rate_limit_uses_a_sliding_window_and_tells_once() -> None:
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert limiter.check(1).allowed
    assert limiter.check(1).allowed
    first, second = limiter.check(1), limiter.check(1)
    assert not first.allowed
    assert first.notify
    assert first.retry_in == 60
    assert not second.allowed
    assert not second.notify
    assert limiter.check(2).allowed
    now[0] = 60.5
    assert limiter.check(1).allowed
    assert RateLimiter(0).check(1).allowed
