"""Feeds and pages into the index: parsing, entry pages with fallback, conditional polling."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from retrieval.config import Config, FeedConfig, WebConfig
from retrieval.errors import LoaderError
from retrieval.ingest.feeds import html_to_text, is_feed, parse_feed
from retrieval.ingest.sources import ingest_source, poll_feed
from retrieval.ingest.web import Fetcher, FetchError
from retrieval.models.encoder import Encoder
from retrieval.newsindex import NewsIndex
from retrieval.service import NewsService
from tests.conftest import Databases, storage_for
from tests.counting_encoder import CountingEncoder
from tests.web_fixtures import MALFORMED_FEED, STORIES, Item, WebSite, atom, rss, site_fixture  # noqa: F401

pytestmark = pytest.mark.timeout(120)

WEB = WebConfig(allow_private_networks=True, timeout=3.0, backoff=0.01, retries=1)


@pytest.fixture
def counting(encoder: Encoder) -> CountingEncoder:
    return CountingEncoder(encoder)


@pytest.fixture
def make(tmp_path: Path, counting: CountingEncoder, databases: Databases | None) -> Iterator[Callable[[], NewsIndex]]:
    """Return a factory of indexes over one data dir or database (several opens share the store)."""
    config = Config(data_dir=str(tmp_path / "data"), web=WEB, storage=storage_for(databases, "data"))
    opened: list[NewsIndex] = []

    def open_index() -> NewsIndex:
        index = NewsIndex.open(config, encoder=counting, create=True)
        opened.append(index)
        return index

    yield open_index
    for index in opened:
        index.close()


def stories_feed(site: WebSite, count: int, *, kind: str = "rss", full: bool = False) -> str:
    for story in STORIES[:count]:
        site.put_story(story)
    items = [Item(s, site.url(f"/news/{s.slug}.html"), full) for s in STORIES[:count]]
    return site.put_feed(f"/feed.{kind}", items, kind)


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/rss+xml", b"<rss/>", True),
        ("application/atom+xml", b"", True),
        ("text/html", b"<rss version='2.0'>", False),
        ("application/xml", b"<?xml version='1.0'?>\n<!-- hi -->\n<rss version='2.0'>", True),
        ("text/xml", b"<feed xmlns='http://www.w3.org/2005/Atom'>", True),
        ("", b"<rdf:RDF xmlns:rdf='x'>", True),
        ("text/plain", b"<!doctype html><html><body>", False),
        ("application/xml", b"<html xmlns='http://www.w3.org/1999/xhtml'>", False),
    ],
)
def test_a_feed_is_told_from_a_page_by_type_and_content(content_type: str, body: bytes, expected: bool) -> None:
    assert is_feed(content_type, body) is expected


def test_rss_and_atom_entries_keep_link_title_date_and_text() -> None:
    items = [Item(STORIES[0], "/news/lighthouse.html", True), Item(STORIES[1], "https://x.example/t", False)]
    for text in (rss("Coast Gazette", "https://x.example/", items), atom("Coast Gazette", "https://x.example/", items)):
        feed = parse_feed(text.encode(), "https://x.example/feed")
        assert feed.title == "Coast Gazette"
        first, second = feed.entries
        assert first.link == "https://x.example/news/lighthouse.html"  # relative links resolved
        assert first.title == STORIES[0].title
        assert first.published == datetime(2025, 3, 7, 9, 0, tzinfo=UTC)
        assert first.text == "\n\n".join(STORIES[0].paragraphs)  # full content, as paragraphs
        assert second.text == STORIES[1].summary  # only a summary


def test_a_malformed_feed_is_a_clear_error() -> None:
    with pytest.raises(LoaderError, match="not a valid RSS or Atom feed"):
        parse_feed(MALFORMED_FEED.encode(), "https://x.example/bad")


def test_html_to_text_keeps_paragraphs_and_drops_scripts() -> None:
    text = html_to_text("<p>One &amp; two</p><script>evil()</script><div>Three<br>four</div>")
    assert text == "One & two\n\nThree\n\nfour"


def test_a_feed_is_ingested_from_its_entry_pages_with_entry_dates_and_outlet(
    site: WebSite, make: Callable[[], NewsIndex]
) -> None:
    url = stories_feed(site, 3)
    index = make()
    with Fetcher(WEB) as fetcher:
        report = poll_feed(index, FeedConfig(url=url, source="The Coast Gazette"), fetcher)
    assert (report.added, report.problems) == (3, [])
    answer = index.ask("How many steps does the Grey Point lighthouse tower have?")
    assert answer.answered
    quote = answer.quotes[0]
    assert "212 steps" in quote.text
    assert quote.article.url == site.url("/news/lighthouse.html")
    assert quote.link.startswith(site.url("/news/lighthouse.html") + "#:~:text=")
    assert quote.article.source == "The Coast Gazette"
    assert quote.article.published == STORIES[0].published
    assert "Subscribe to our newsletter" not in index.get(quote.article.id).text  # page furniture


def test_the_entry_text_is_used_when_its_page_cannot_be_fetched(site: WebSite, make: Callable[[], NewsIndex]) -> None:
    # Atom with full content; the pages are missing (404) or not text.
    items = [Item(STORIES[2], site.url("/gone.html"), True), Item(STORIES[3], site.url("/image.png"), True)]
    site.put("/image.png", b"\x89PNG", "image/png")
    url = site.put_feed("/full.atom", items, "atom", title="Valley News")
    index = make()
    with Fetcher(WEB) as fetcher:
        report = ingest_source(index, url, fetcher)
    assert report.added == 2
    answer = index.ask("How cold did it get during the late frost?")
    assert "minus four degrees" in answer.quotes[0].text
    assert answer.quotes[0].article.source == "Valley News"  # the feed's title


def test_an_entry_without_page_or_text_is_a_problem_and_is_retried(
    site: WebSite, make: Callable[[], NewsIndex]
) -> None:
    site.put_story(STORIES[0])
    items = [Item(STORIES[0], site.url("/news/lighthouse.html")), Item(STORIES[1], site.url("/missing.html"))]
    # Without full content the summary is the entry's text; make it empty to have nothing.
    url = site.put(
        "/thin.rss", rss("Coast", site.url("/"), items).replace(STORIES[1].summary, ""), "application/rss+xml"
    )
    index = make()
    with Fetcher(WEB) as fetcher:
        report = ingest_source(index, url, fetcher)
        assert report.added == 1 and len(report.problems) == 1 and "missing.html" in report.problems[0]
        again = ingest_source(index, url, fetcher)
    # The feed was fetched whole again (no validators kept), the good entry was not refetched.
    assert "If-None-Match" not in site.hits("/thin.rss")[-1].headers
    assert len(site.hits("/news/lighthouse.html")) == 1
    assert len(site.hits("/missing.html")) == 2
    assert again.added == 0


def test_an_unchanged_feed_costs_one_conditional_request_and_no_embedding(
    site: WebSite, make: Callable[[], NewsIndex], counting: CountingEncoder
) -> None:
    url = stories_feed(site, 3)
    feed = FeedConfig(url=url)
    with Fetcher(WEB) as fetcher:
        first = poll_feed(make(), feed, fetcher)
        embedded = counting.texts
        requests = len(site.requests)
        second = poll_feed(make(), feed, fetcher)
    assert first.added == 3 and embedded > 0
    assert counting.texts == embedded, "an unchanged feed must not be embedded again"
    assert len(site.requests) == requests + 1
    request = site.requests[-1]
    assert request.path == "/feed.rss" and request.status == 304
    assert request.headers["If-None-Match"] and request.headers["If-Modified-Since"]
    assert (second.added, second.updated, second.skipped) == (0, 0, 1)


def test_a_changed_feed_fetches_and_embeds_only_the_new_entry(
    site: WebSite, make: Callable[[], NewsIndex], counting: CountingEncoder
) -> None:
    url = stories_feed(site, 3)
    with Fetcher(WEB) as fetcher:
        poll_feed(make(), FeedConfig(url=url), fetcher)
        before = counting.texts
        stories_feed(site, 4)  # the ferry strike appears
        pages_before = len([r for r in site.requests if r.path.startswith("/news/")])
        report = poll_feed(make(), FeedConfig(url=url), fetcher)
    pages = [r.path for r in site.requests if r.path.startswith("/news/")][pages_before:]
    assert pages == ["/news/ferry-strike.html"]
    assert (report.added, report.skipped) == (1, 3)
    index = make()
    new_passages = sum(info.passages for info in index.sources() if "ferry" in info.article.url)
    assert counting.texts - before == new_passages
    assert "3,400 passengers" in index.ask("How many passengers were stranded by the ferry strike?").quotes[0].text


def test_a_changed_entry_page_replaces_its_article(site: WebSite, make: Callable[[], NewsIndex]) -> None:
    url = stories_feed(site, 1)
    with Fetcher(WEB) as fetcher:
        poll_feed(make(), FeedConfig(url=url), fetcher)
        changed = dataclasses.replace(
            STORIES[0],
            summary="Updated: the keeper's cottage will be a museum.",
            paragraphs=(*STORIES[0].paragraphs, "The museum will open in June with the keeper's logbooks on show."),
        )
        site.put_story(changed)
        site.put_feed("/feed.rss", [Item(changed, site.url("/news/lighthouse.html"))])
        report = poll_feed(make(), FeedConfig(url=url), fetcher)
    assert (report.added, report.updated) == (0, 1)
    index = make()
    assert len(index.sources()) == 1
    assert "logbooks" in index.ask("When will the lighthouse museum open?").quotes[0].text


def test_a_page_url_is_ingested_and_refetched_conditionally(
    site: WebSite, make: Callable[[], NewsIndex], counting: CountingEncoder
) -> None:
    url = site.put_story(STORIES[1])
    index = make()
    service = NewsService(index)
    report = service.ingest_url(url)
    assert report.added == 1
    answer = index.ask("How long does the train take through the glacier tunnel?")
    assert "twenty-two minutes" in answer.quotes[0].text
    embedded = counting.texts
    again = service.ingest_url(url)
    assert again.skipped == 1 and site.requests[-1].status == 304 and counting.texts == embedded
    # Once removed, the page is fetched whole and stored again.
    index.remove(url)
    third = service.ingest_url(url)
    assert third.added == 1 and site.requests[-1].status == 200


def test_a_malformed_feed_fails_without_touching_the_index(site: WebSite, make: Callable[[], NewsIndex]) -> None:
    url = site.put("/broken.rss", MALFORMED_FEED, "application/rss+xml")
    index = make()
    with Fetcher(WEB) as fetcher, pytest.raises(LoaderError, match="not a valid RSS or Atom feed"):
        ingest_source(index, url, fetcher)
    assert index.stats().articles == 0
    assert index.fetch_cache().get(url) is None


def test_the_cache_survives_in_the_store(site: WebSite, make: Callable[[], NewsIndex]) -> None:
    url = stories_feed(site, 1)
    with Fetcher(WEB) as fetcher:
        poll_feed(make(), FeedConfig(url=url), fetcher)
    row = make().fetch_cache().get(url)
    assert row is not None and row.validators.etag
    assert make().check().ok


def test_fetch_errors_are_loader_errors_for_the_front_ends(site: WebSite, make: Callable[[], NewsIndex]) -> None:
    index = make()
    with Fetcher(WEB) as fetcher, pytest.raises(FetchError, match="HTTP 404"):
        ingest_source(index, site.url("/nothing.rss"), fetcher)


def test_a_feed_entry_whose_page_has_no_article_is_reported_and_the_rest_go_in(
    site: WebSite, make: Callable[[], NewsIndex]
) -> None:
    site.put_story(STORIES[0])
    site.put("/account/login", (Path(__file__).parent / "fixtures" / "login.html").read_text(), "text/html")
    login = dataclasses.replace(STORIES[1], slug="login", summary="", paragraphs=())
    items = [Item(STORIES[0], site.url(f"/news/{STORIES[0].slug}.html")), Item(login, site.url("/account/login"))]
    feed = site.put_feed("/feed.rss", items)
    index = make()
    with Fetcher(WEB) as fetcher:
        report = ingest_source(index, feed, fetcher)
    assert report.added == 1
    [problem] = report.problems
    assert site.url("/account/login") in problem and "no article text found" in problem
    assert [info.article.title for info in index.sources()] == [STORIES[0].title]
