"""RSS and Atom feeds: telling a feed from a page, and reading its entries.

A feed is told from a page by its content type, and by its first element when the type is
generic XML, text or missing. Each entry keeps its link, title, date, its own text (for when its
page cannot be read) and a fingerprint of all of these, so that a changed entry is seen as new.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

from retrieval.errors import LoaderError

__all__ = ["Feed", "FeedEntry", "html_to_text", "is_feed", "parse_feed"]

log = logging.getLogger(__name__)

FEED_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/rdf+xml"})
PAGE_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_ROOT = re.compile(rb"<(rss|feed|rdf:RDF|html)\b", re.I)


def is_feed(content_type: str, body: bytes) -> bool:
    """Return True if a response is an RSS/Atom feed rather than a page."""
    if content_type in FEED_TYPES:
        return True
    if content_type in PAGE_TYPES:
        return False
    # application/xml, text/xml, text/plain or nothing: look at the first element.
    found = _ROOT.search(body[:4096])
    return found is not None and found.group(1).lower() != b"html"


@dataclass(frozen=True)
class FeedEntry:
    """One item of a feed."""

    link: str
    title: str | None
    published: datetime | None
    text: str  # the entry's own content (or summary) as plain text; may be empty
    fingerprint: str


@dataclass(frozen=True)
class Feed:
    """A parsed feed."""

    url: str
    title: str | None
    entries: tuple[FeedEntry, ...]


def parse_feed(body: bytes, url: str, content_type: str = "") -> Feed:
    """Parse an RSS or Atom document with feedparser; raise LoaderError when it is not one."""
    import feedparser

    # A stream, never a string: feedparser fetches strings that look like URLs or file names.
    parsed = feedparser.parse(
        io.BytesIO(body),
        response_headers={
            "content-location": url,
            "content-type": content_type or "application/xml",
        },
    )
    # feedparser recovers what it can from broken XML; only a document with no entries that is
    # broken or not a feed at all is refused (a well-formed empty feed is just empty).
    if not parsed.entries and (parsed.get("bozo") or not parsed.get("version")):
        problem = parsed.get("bozo_exception")
        detail = f" ({problem})" if problem else ""
        raise LoaderError(f"{url}: not a valid RSS or Atom feed{detail}")
    entries: list[FeedEntry] = []
    for raw in parsed.entries:
        link = str(raw.get("link") or "").strip()
        guid = str(raw.get("id") or "").strip()
        if not link.startswith(("http://", "https://")):
            link = guid if guid.startswith(("http://", "https://")) else ""
        if not link:
            log.info("skipping an entry without a link in %s", url)
            continue
        text = _entry_text(raw)
        title = str(raw.get("title") or "").strip() or None
        stamp = raw.get("published_parsed") or dict.get(raw, "updated_parsed")
        published = _utc(stamp)
        facts = "\x1f".join(
            [
                guid,
                link,
                title or "",
                str(dict.get(raw, "updated") or ""),
                str(raw.get("published") or ""),
                text,
            ]
        )
        fingerprint = hashlib.sha256(facts.encode("utf-8", "replace")).hexdigest()[:32]
        entries.append(FeedEntry(link, title, published, text, fingerprint))
    title = str(parsed.feed.get("title") or "").strip() or None
    return Feed(url, title, tuple(entries))


def _utc(stamp: Any) -> datetime | None:
    """Return feedparser's UTC time tuple as an aware datetime."""
    if not stamp:
        return None
    year, month, day, hour, minute, second = (int(x) for x in tuple(stamp)[:6])
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _entry_text(raw: Any) -> str:
    summary = {
        "value": raw.get("summary"),
        "type": (raw.get("summary_detail") or {}).get("type", "text/html"),
    }
    for item in [*(raw.get("content") or []), summary]:
        value = str((item or {}).get("value") or "")
        if value.strip():
            kind = str(item.get("type") or "text/html")
            return html_to_text(value) if "html" in kind else value.strip()
    return ""


class _TextParser(HTMLParser):
    BLOCKS = frozenset(
        {
            "p",
            "div",
            "br",
            "li",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "blockquote",
            "tr",
            "section",
            "article",
        }
    )
    SKIP = frozenset({"script", "style", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(fragment: str) -> str:
    """Return the text of an HTML fragment, one paragraph per block element."""
    parser = _TextParser()
    parser.feed(fragment)
    parser.close()
    paragraphs = (" ".join(p.split()) for p in "".join(parser.parts).split("\n\n"))
    return "\n\n".join(p for p in paragraphs if p)
