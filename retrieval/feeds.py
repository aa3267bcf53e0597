"""Read RSS and Atom feeds and web pages into the index, fetching only what changed.

A feed is told from a page by its content type, and by its first element when the type is
generic XML, text or missing. Each new or changed entry's page is fetched and extracted; when
the page cannot be fetched or has no text, the entry's own content is used. The entry's date and
the outlet (the feed's configured source, else its title) are kept.

What was fetched is remembered in the store's ``web_fetches`` table: a URL's ETag and
Last-Modified (for conditional GETs) and a fingerprint of each feed entry, so an unchanged feed
costs one request answered 304 and an unchanged entry costs nothing. The table is written only
after the articles are committed, so a crash in between means refetching, never losing.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

from retrieval.config import FeedConfig
from retrieval.errors import LoaderError
from retrieval.loaders import article_from_html, make_article
from retrieval.models import Article
from retrieval.newsindex import IngestReport, NewsIndex
from retrieval.store import Store, parse_time
from retrieval.web import Fetched, Fetcher, Validators
from retrieval.wording import plural

__all__ = [
    "Feed",
    "FeedEntry",
    "FetchCache",
    "html_to_text",
    "ingest_source",
    "is_feed",
    "parse_feed",
    "poll_feed",
]

log = logging.getLogger(__name__)

FEED_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/rdf+xml"})
PAGE_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_ROOT = re.compile(rb"<(rss|feed|rdf:RDF|html)\b", re.I)
# Page fetches running at once for one feed (the fetcher's per-host cap still applies).
WORKERS = 4


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


# -- what was fetched before ---------------------------------------------------------------------


@dataclass(frozen=True)
class CacheRow:
    """What is remembered about one fetched URL."""

    url: str
    validators: Validators
    fingerprint: str | None = None  # of a feed entry
    article_id: str | None = None  # of a page


class FetchCache:
    """ETag/Last-Modified per URL and feed-entry fingerprints, in the store's database."""

    def __init__(self, store: Store) -> None:
        self.store = store
        with store.connection() as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS web_fetches (url TEXT PRIMARY KEY, etag TEXT, "
                "last_modified TEXT, fingerprint TEXT, article_id TEXT, fetched_at TEXT NOT NULL)"
            )

    @staticmethod
    def of(store: Store) -> FetchCache:
        """Return the fetch cache kept in this store's database (SQLite, or PostgreSQL)."""
        from retrieval.pg.store import PgStore  # no driver import: that happens on connecting

        if isinstance(store, PgStore):
            from retrieval.pg.fetchcache import PgFetchCache

            return PgFetchCache(store)
        return FetchCache(store)

    def get(self, url: str) -> CacheRow | None:
        """Return what is remembered about a URL."""
        with self.store.connection() as con:
            row = con.execute(
                "SELECT etag, last_modified, fingerprint, article_id FROM web_fetches WHERE url = ?",
                (url,),
            ).fetchone()
        if row is None:
            return None
        return CacheRow(url, Validators(row[0], row[1]), row[2], row[3])

    def fetched_at(self, url: str) -> datetime | None:
        """Return when ``url`` was last fetched in full or found unchanged (a feed: polled to the end)."""
        with self.store.connection() as con:
            row = con.execute("SELECT fetched_at FROM web_fetches WHERE url = ?", (url,)).fetchone()
        return parse_time(row[0]) if row else None

    def put(self, rows: list[CacheRow]) -> None:
        """Remember these rows, all in one transaction."""
        if not rows:
            return
        now = datetime.now(UTC).isoformat()
        with self.store.connection() as con:
            # Not store.transaction(): that bumps the generation and makes every reader reload.
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany(
                    "INSERT INTO web_fetches (url, etag, last_modified, fingerprint, article_id, "
                    "fetched_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (url) DO UPDATE SET "
                    "etag = excluded.etag, "
                    "last_modified = excluded.last_modified, fingerprint = excluded.fingerprint, "
                    "article_id = excluded.article_id, fetched_at = excluded.fetched_at",
                    [
                        (
                            r.url,
                            r.validators.etag,
                            r.validators.last_modified,
                            r.fingerprint,
                            r.article_id,
                            now,
                        )
                        for r in rows
                    ],
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def validators_for_page(self, url: str) -> Validators | None:
        """Return a page's validators if its article is still stored (else fetch it whole)."""
        row = self.get(url)
        if row is None or row.article_id is None or self.store.article_state(row.article_id) is None:
            return None
        return row.validators


# -- ingesting -----------------------------------------------------------------------------------


def ingest_source(
    index: NewsIndex,
    url: str,
    fetcher: Fetcher,
    *,
    source: str | None = None,
    stop: threading.Event | None = None,
) -> IngestReport:
    """Fetch ``url`` and ingest it: a feed's new and changed entries, or the page itself."""
    cache = FetchCache.of(index.store)
    row = cache.get(url)
    if row is not None and row.article_id is not None:
        validators = cache.validators_for_page(url)
    else:
        validators = row.validators if row is not None else None
    fetched = fetcher.fetch(url, validators=validators)
    if fetched.not_modified:
        log.info("%s has not changed since the last fetch", url)
        if row is not None:
            cache.put([row])  # polled to the end now: other replicas need not poll it again yet
        return IngestReport(skipped=1)
    if is_feed(fetched.content_type, fetched.body):
        feed = parse_feed(fetched.body, fetched.url, fetched.content_type)
        return _ingest_feed(index, url, fetched, feed, fetcher, cache, source, stop)
    article = _page_article(fetched, fetched.url)
    if source:
        article = replace(article, source=source)
    report = index.ingest([article])
    cache.put([CacheRow(url, fetched.validators, article_id=article.id)])
    return report


def poll_feed(
    index: NewsIndex, feed: FeedConfig, fetcher: Fetcher, stop: threading.Event | None = None
) -> IngestReport:
    """Poll one configured feed: ingest what is new or changed since the last poll."""
    return ingest_source(index, feed.url, fetcher, source=feed.source or None, stop=stop)


def _page_article(fetched: Fetched, url: str) -> Article:
    if is_feed(fetched.content_type, fetched.body):
        raise LoaderError(f"{url}: is a feed, not an article page")
    return article_from_html(fetched.text(), url=url)


@dataclass(frozen=True)
class _Outcome:
    entry: FeedEntry
    article: Article | None = None
    validators: Validators = field(default_factory=Validators)
    stored_id: str | None = None  # the article already stored for an unchanged page
    problem: str | None = None


def _ingest_feed(
    index: NewsIndex,
    url: str,
    fetched: Fetched,
    feed: Feed,
    fetcher: Fetcher,
    cache: FetchCache,
    source: str | None,
    stop: threading.Event | None,
) -> IngestReport:
    outlet = source or feed.title
    todo: list[FeedEntry] = []
    known = 0
    seen: set[str] = set()
    for entry in feed.entries:
        if entry.link in seen:
            continue
        seen.add(entry.link)
        row = cache.get(entry.link)
        if row is not None and row.fingerprint == entry.fingerprint:
            known += 1
        else:
            todo.append(entry)
    done: list[CacheRow] = []
    problems: list[str] = []
    stopped = False
    unchanged = 0

    def build(entry: FeedEntry) -> _Outcome:
        if stop is not None and stop.is_set():
            return _Outcome(entry, problem="stopped")
        return _entry_outcome(entry, outlet, fetcher, cache)

    def articles() -> Iterator[Article]:
        nonlocal stopped, unchanged
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="feed") as pool:
            try:
                for outcome in pool.map(build, todo):
                    if stop is not None and stop.is_set():
                        stopped = True
                        return
                    if outcome.problem is not None:
                        problems.append(outcome.problem)
                        continue
                    done.append(
                        CacheRow(
                            outcome.entry.link,
                            outcome.validators,
                            fingerprint=outcome.entry.fingerprint,
                            article_id=outcome.article.id if outcome.article is not None else outcome.stored_id,
                        )
                    )
                    if outcome.article is not None:
                        yield outcome.article
                    else:
                        unchanged += 1
            finally:
                pool.shutdown(wait=True, cancel_futures=True)

    report = index.ingest(articles())
    report.skipped += known + unchanged
    report.problems.extend(problems)
    # Only now that the articles are committed: remember the entries, then the feed itself.
    cache.put(done)
    if not stopped and not problems:
        cache.put([CacheRow(url, fetched.validators)])
    elif problems:
        # Without its validators the feed is fetched whole next time, so failed entries are retried.
        log.info(
            "%s: %s could not be read; retried at the next poll",
            url,
            plural(len(problems), "entry"),
        )
    return report


def _entry_outcome(entry: FeedEntry, outlet: str | None, fetcher: Fetcher, cache: FetchCache) -> _Outcome:
    """Fetch and extract an entry's page; fall back to the entry's own content."""
    try:
        validators = cache.validators_for_page(entry.link)
        page = fetcher.fetch(entry.link, validators=validators)
        if page.not_modified and validators is not None:
            row = cache.get(entry.link)
            return _Outcome(entry, validators=validators, stored_id=row.article_id if row else None)
        article = _page_article(page, entry.link)
        article = replace(
            article,
            title=entry.title or article.title,
            source=outlet or article.source,
            published=entry.published or article.published,
        )
        return _Outcome(entry, article, page.validators)
    except LoaderError as exc:
        if not entry.text:
            return _Outcome(entry, problem=f"{entry.link}: {exc}; the entry has no text of its own")
        log.info("using the feed's own text for %s: %s", entry.link, exc)
    try:
        article = make_article(entry.text, url=entry.link, title=entry.title, source=outlet, published=entry.published)
    except LoaderError as exc:
        return _Outcome(entry, problem=f"{entry.link}: {exc}")
    return _Outcome(entry, article)
