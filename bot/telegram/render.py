"""Render answers as Telegram HTML: escaped, quoted, linked, and split to fit Telegram's limit.

Everything here is pure: values in, strings out. Telegram measures a message after parsing its
entities, in UTF-16 code units, so every piece of markup carries the length of the text it
shows, and messages are cut only between whole blocks (one quote each), never inside a tag.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple
from urllib.parse import quote, urlsplit

from retrieval.answering.state import NO_MATCH
from retrieval.domain import Answer, Article, Quote

__all__ = [
    "MAX_MESSAGE_UNITS",
    "Html",
    "Rendered",
    "clean_text",
    "pack",
    "render_answer",
    "render_not_found",
    "render_quote",
    "safe_url",
    "utf16_len",
]

MAX_MESSAGE_UNITS = 4096
ELLIPSIS = "…"
BLOCK_SEPARATOR = "\n\n"
MAX_TITLE_CHARS = 200
MAX_ALSO_IN = 3

# C0/C1 controls other than tab and newline, lone surrogates and non-characters: Telegram either
# drops them or refuses the message, and a lone surrogate cannot even be encoded to UTF-8.
_UNSHOWABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_SPACES = re.compile(r"[^\S\n]+")
_BREAKS = re.compile(r"\s*\n\s*")
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"


def utf16_len(text: str) -> int:
    """Return the length of ``text`` in UTF-16 code units, as Telegram counts it."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def clean_text(text: str) -> str:
    """Drop characters Telegram cannot show and collapse runs of whitespace."""
    text = _UNSHOWABLE.sub("", text)
    text = _BREAKS.sub("\n", _SPACES.sub(" ", text))
    return text.strip()


def safe_url(url: str | None) -> str | None:
    """Return ``url`` if it is an absolute http(s) URL Telegram will accept as a link."""
    if not url or _UNSHOWABLE.search(url) or any(c.isspace() for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    # Percent-encode what a URL may not hold raw (<, >, quotes, non-ASCII); keep the rest.
    return quote(url, safe=_URL_SAFE)


class Html(NamedTuple):
    """A piece of Telegram HTML and the number of UTF-16 units it shows once parsed."""

    markup: str
    units: int

    def __add__(self, other: object) -> Html:
        if not isinstance(other, Html):
            return NotImplemented
        return Html(self.markup + other.markup, self.units + other.units)

    @classmethod
    def text(cls, text: str) -> Html:
        """Return ``text`` escaped, shown exactly as given."""
        return cls(html.escape(text, quote=False), utf16_len(text))

    @classmethod
    def join(cls, pieces: Iterable[Html], separator: str = "") -> Html:
        """Return the pieces joined by a plain-text separator."""
        out = cls("", 0)
        for i, piece in enumerate(pieces):
            out = out + (cls.text(separator) + piece if i else piece)
        return out

    def wrap(self, tag: str, **attrs: str) -> Html:
        """Return this piece inside ``<tag attrs>``; markup adds no shown length."""
        attributes = "".join(f' {k}="{html.escape(v, quote=True)}"' for k, v in attrs.items())
        return Html(f"<{tag}{attributes}>{self.markup}</{tag}>", self.units)

    def link(self, url: str | None) -> Html:
        """Return this piece as a link to ``url``, or unchanged when the URL is unusable."""
        href = safe_url(url)
        return self.wrap("a", href=href) if href else self


@dataclass(frozen=True)
class Rendered:
    """Messages to send in order; ``preview_url`` is the link to preview, None for no preview."""

    messages: tuple[str, ...]
    preview_url: str | None = None


def _shorten(text: str, limit: int) -> str:
    """Return ``text`` cut at a word boundary to at most ``limit`` characters, marked with …."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


def _window(text: str, highlight: tuple[int, int], limit: int) -> tuple[str, str, str]:
    """Return (before, marked, after) around the highlight, trimmed to about ``limit`` chars."""
    start, end = sorted((max(0, min(highlight[0], len(text))), max(0, min(highlight[1], len(text)))))
    before, marked, after = text[:start], text[start:end], text[end:]
    if len(text) <= limit:
        return before, marked, after
    if len(marked) >= limit:
        return "", _shorten(marked, limit), ELLIPSIS
    room = limit - len(marked)
    keep_before = min(len(before), room // 2)
    keep_after = min(len(after), room - keep_before)
    keep_before = min(len(before), room - keep_after)
    if keep_before < len(before):
        tail = before[len(before) - keep_before :]
        space = tail.find(" ")
        if 0 <= space < len(tail) // 2:
            tail = tail[space + 1 :]
        before = ELLIPSIS + tail
    if keep_after < len(after):
        after = _shorten(after, keep_after + 1)
        if not after.endswith(ELLIPSIS):
            after += ELLIPSIS
    return before, marked, after


def _date(value: datetime | None) -> str | None:
    return f"{value.day} {value:%b %Y}" if value is not None else None


def _outlet(article: Article) -> str:
    """Return the article's outlet name, else its site's host name."""
    if article.source and clean_text(article.source):
        return _shorten(clean_text(article.source), 80)
    host = urlsplit(article.url).hostname if safe_url(article.url) else None
    return host.removeprefix("www.") if host else "unknown source"


def _quote_block(quote: Quote, quote_chars: int) -> Html:
    """Return one quote: the passage quoted, its best sentence bold, then its source."""
    size = len(quote.text)
    hs, he = sorted((max(0, min(quote.highlight[0], size)), max(0, min(quote.highlight[1], size))))
    # The passage is shown verbatim (ingestion already removed what Telegram cannot show);
    # only characters that slipped through are dropped, each part on its own so the highlight
    # keeps its place.
    before, marked, after = (
        _UNSHOWABLE.sub("", part) for part in (quote.text[:hs], quote.text[hs:he], quote.text[he:])
    )
    text = before + marked + after
    before, marked, after = _window(text, (len(before), len(before) + len(marked)), quote_chars)
    body = (
        Html.text(before.lstrip())
        + (Html.text(marked).wrap("b") if marked.strip() else Html.text(marked))
        + Html.text(after.rstrip())
    )
    if not body.units:
        body = Html.text(ELLIPSIS)
    article = quote.article
    title = clean_text(article.title or "") or _outlet(article)
    heading = Html.text(_shorten(title, MAX_TITLE_CHARS)).link(quote.link or article.url)
    details = [_outlet(article)]
    when = _date(article.published)
    if when:
        details.append(when)
    source_line = Html.text(" · ".join(details))
    block = body.wrap("blockquote") + Html.text("\n") + heading + Html.text("\n") + source_line
    others = [a for a in quote.also_in if a.id != article.id][: MAX_ALSO_IN + 1]
    if others:
        shown = [Html.text(_outlet(a)).link(a.url) for a in others[:MAX_ALSO_IN]]
        more = len(quote.also_in) - MAX_ALSO_IN
        line = Html.text("\nAlso in: ") + Html.join(shown, ", ")
        if more > 0:
            line = line + Html.text(f" and {more} more")
        block = block + line
    return block


def render_quote(quote: Quote, *, quote_chars: int = 800) -> str:
    """Return one quote as a complete message (used for inline results)."""
    return pack([_quote_block(quote, quote_chars)])[0]


def render_not_found(answer: Answer) -> str:
    """Return the kind reply for a question the articles do not answer."""
    if answer.reason and answer.reason.startswith(NO_MATCH):
        # The filters typed in the question leave no article to search.
        filters = answer.reason[len(NO_MATCH) :].strip()
        text = (
            Html.text("No article I have read matches ")
            + Html.text(_shorten(filters, 200)).wrap("code")
            + Html.text(", so I searched nothing. Try without it, or see what I have read with /sources.")
        )
        return text.markup
    asked = clean_text(answer.question)
    head = Html.text("I found nothing in my articles that answers ")
    if asked:
        head = head + Html.text(f"“{_shorten(asked, 200)}”").wrap("i")
    else:
        head = Html.text("I found nothing in my articles that answers that")
    hint = Html.text(".\n\nTry other words (names, places, what happened), or see what I have read with /sources.")
    return (head + hint).markup


def pack(blocks: Sequence[Html], limit: int = MAX_MESSAGE_UNITS) -> list[str]:
    """Return messages made of whole blocks, each showing at most ``limit`` UTF-16 units."""
    messages: list[str] = []
    current: Html | None = None
    for block in blocks:
        if block.units > limit:
            block = _truncate(block, limit)
        if current is not None and current.units + utf16_len(BLOCK_SEPARATOR) + block.units <= limit:
            current = current + Html.text(BLOCK_SEPARATOR) + block
            continue
        if current is not None:
            messages.append(current.markup)
        current = block
    if current is not None:
        messages.append(current.markup)
    return messages


def _truncate(block: Html, limit: int) -> Html:
    """Return a plain-text stand-in for a block that cannot fit one message on its own."""
    # Only reachable with absurd titles or outlet lists; plain text cannot break a tag.
    plain = html.unescape(re.sub(r"<[^>]*>", "", block.markup))
    text = plain
    while utf16_len(text) > limit - 1:
        text = text[: len(text) - max(1, (utf16_len(text) - limit) // 2 + 1)]
    return Html.text(text.rstrip() + ELLIPSIS)


def render_answer(
    answer: Answer,
    *,
    limit: int = MAX_MESSAGE_UNITS,
    quote_chars: int = 800,
    preview: str = "off",
    header: str | None = None,
) -> Rendered:
    """Return an answer as one or more messages, split between quotes.

    ``preview`` is "off" (no link preview) or "first" (preview the first quote's article).
    ``header`` is plain text put before the first quote, e.g. the question in a group.
    """
    if not answer.answered or not answer.quotes:
        return Rendered((render_not_found(answer),))
    blocks = [_quote_block(q, quote_chars) for q in answer.quotes]
    if header and clean_text(header):
        blocks[0] = Html.text(_shorten(clean_text(header), 300)).wrap("i") + Html.text("\n") + blocks[0]
    url = None
    if preview == "first":
        first = answer.quotes[0]
        url = safe_url(first.article.url) or safe_url(first.link)
    return Rendered(tuple(pack(blocks, limit)), url)
