"""Read web pages and RSS/Atom feeds into the index, fetching only what changed.

Each new or changed entry's page is fetched and extracted; when the page cannot be fetched or
has no text, the entry's own content is used. The entry's date and the outlet (the feed's
configured source, else its title) are kept.

What was fetched is remembered in the store's fetch cache (``Backend.fetch_cache``): a URL's
ETag and Last-Modified (for conditional GETs) and a fingerprint of each feed entry, so an
unchanged feed costs one request answered 304 and an unchanged entry costs nothing. The cache is
written only after the articles are committed, so a crash in between means refetching, never
losing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from retrieval.config import FeedConfig
from retrieval.domain import Article
from retrieval.errors import LoaderError
from retrieval.ingest.cache import CacheRow, FetchCache, Validators
from retrieval.ingest.feeds import Feed, FeedEntry, is_feed, parse_feed
from retrieval.ingest.indexing import IngestReport
from retrieval.ingest.loaders import article_from_html, make_article
from retrieval.ingest.web import Fetched, Fetcher
from retrieval.newsindex import NewsIndex
from retrieval.wording import plural

__all__ = ["ingest_source", "poll_feed"]

log = logging.getLogger(__name__)

# Page fetches running at once for one feed (the fetcher's per-host cap still applies).
WORKERS = 4


def ingest_source(
    index: NewsIndex,
    url: str,
    fetcher: Fetcher,
    *,
    source: str | None = None,
    stop: threading.Event | None = None,
) -> IngestReport:
    """Fetch ``url`` and ingest it: a feed's new and changed entries, or the page itself."""
    cache = index.fetch_cache()
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
