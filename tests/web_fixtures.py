"""A loopback web site for the web and feed tests: article pages, RSS 2.0 and Atom feeds, and traps.

Everything it serves is written here. Every resource answers conditional GETs (ETag and
Last-Modified, 304 when unchanged); the traps are a slow drip, a 100 MB body (with and without
Content-Length), redirect chains and loops, wrong content types, a malformed feed and a URL that
fails with 503 a set number of times. Requests are recorded so tests can count them.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = ["STORIES", "Item", "Recorded", "Story", "WebSite", "site_fixture"]


@dataclass(frozen=True)
class Story:
    """An article of the test site: its page, and what a feed item says about it."""

    slug: str
    title: str
    summary: str
    paragraphs: tuple[str, ...]
    published: datetime


# Fictional stories written for these tests; each holds a fact that only it can answer.
STORIES = [
    Story(
        "lighthouse",
        "Last keeper leaves the Grey Point lighthouse",
        "The Grey Point lighthouse is now fully automated.",
        (
            "The last keeper of the Grey Point lighthouse, Agnes Morrow, locked the tower door on "
            "Friday after thirty-one years of service, handing the light over to an automatic "
            "lamp controlled from the harbour office.",
            "Morrow said she had climbed the 212 steps of the tower about eleven thousand times, "
            "and that she would miss the storms more than the quiet evenings.",
            "The coastal authority said the automatic lamp would cut running costs by half, and "
            "that the keeper's cottage would be turned into a small museum of the coast.",
        ),
        datetime(2025, 3, 7, 9, 0, tzinfo=UTC),
    ),
    Story(
        "glacier-tunnel",
        "Rail tunnel under the Varn glacier opens",
        "A new rail tunnel links the two valleys.",
        (
            "A rail tunnel running 14 kilometres under the Varn glacier opened on Tuesday, "
            "cutting the journey between the two valleys from three hours by road to "
            "twenty-two minutes by train.",
            "Engineers had to freeze the ground around the northern portal for two winters "
            "because meltwater kept flooding the workings, the project director said.",
            "The first train carried schoolchildren from both valleys, who had painted the "
            "carriages with pictures of ibex and marmots.",
        ),
        datetime(2025, 3, 8, 14, 30, tzinfo=UTC),
    ),
    Story(
        "orchard-frost",
        "Late frost ruins half the cherry harvest",
        "Growers count losses after a night of frost.",
        (
            "A late frost on the night of 2 April destroyed about half of this year's cherry "
            "blossom in the Lune valley, growers said, after temperatures fell to minus four "
            "degrees.",
            "Some growers lit candles between the rows and ran sprinklers all night, a trick "
            "that coats the buds in ice and keeps them just above freezing.",
            "The growers' cooperative asked the regional government for emergency help to pay "
            "seasonal pickers who now have no harvest to bring in.",
        ),
        datetime(2025, 4, 3, 7, 15, tzinfo=UTC),
    ),
    Story(
        "ferry-strike",
        "Island ferry crews walk out over rosters",
        "Ferry crews strike over new rosters.",
        (
            "Crews of the island ferries went on strike at dawn on Monday over new rosters that "
            "would have them work fourteen-hour shifts during the summer season.",
            "The strike left about 3,400 passengers stranded on the mainland, and the island's "
            "only supermarket said it would run out of fresh milk by Wednesday.",
            "The ferry company offered to shorten the longest shifts to twelve hours, but the "
            "union said the offer came too late and would put it to a vote of its members.",
        ),
        datetime(2025, 4, 14, 6, 0, tzinfo=UTC),
    ),
]


def article_page(story: Story, outlet: str = "Coast Gazette") -> str:
    """Return a full news page (navigation, article, footer) for a story."""
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in story.paragraphs)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(story.title)} | {outlet}</title>
<meta property="og:site_name" content="{outlet}">
<meta property="og:title" content="{html.escape(story.title)}">
<meta property="article:published_time" content="{story.published.isoformat()}">
</head><body>
<nav><a href="/">Home</a> <a href="/news">News</a> <a href="/sport">Sport</a></nav>
<article><h1>{html.escape(story.title)}</h1>
<p class="byline">By the {outlet} staff</p>
{body}
</article>
<footer><p>Subscribe to our newsletter.</p><p>© {outlet}</p></footer>
</body></html>"""


@dataclass(frozen=True)
class Item:
    """One entry of a feed."""

    story: Story
    link: str
    full_content: bool = False


def rss(title: str, site: str, items: list[Item]) -> str:
    """Return an RSS 2.0 feed, with content:encoded for items that carry their full text."""
    parts = []
    for item in items:
        s = item.story
        content = ""
        if item.full_content:
            encoded = "".join(f"<p>{html.escape(p)}</p>" for p in s.paragraphs)
            content = f"<content:encoded><![CDATA[{encoded}]]></content:encoded>"
        parts.append(
            f"<item><title>{html.escape(s.title)}</title><link>{html.escape(item.link)}</link>"
            f"<guid isPermaLink='true'>{html.escape(item.link)}</guid>"
            f"<pubDate>{format_datetime(s.published)}</pubDate>"
            f"<description>{html.escape(s.summary)}</description>{content}</item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        f"<channel><title>{html.escape(title)}</title><link>{html.escape(site)}</link>"
        f"<description>Test feed</description>{''.join(parts)}</channel></rss>"
    )


def atom(title: str, site: str, items: list[Item]) -> str:
    """Return an Atom feed, with <content> for entries that carry their full text."""
    parts = []
    for item in items:
        s = item.story
        content = ""
        if item.full_content:
            encoded = "".join(f"<p>{html.escape(p)}</p>" for p in s.paragraphs)
            content = f'<content type="html">{html.escape(encoded)}</content>'
        parts.append(
            f"<entry><title>{html.escape(s.title)}</title>"
            f'<link rel="alternate" href="{html.escape(item.link)}"/>'
            f"<id>{html.escape(item.link)}</id><published>{s.published.isoformat()}</published>"
            f"<updated>{s.published.isoformat()}</updated>"
            f"<summary>{html.escape(s.summary)}</summary>{content}</entry>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{html.escape(title)}</title><id>{html.escape(site)}</id>"
        f"<updated>2025-04-14T06:00:00+00:00</updated>{''.join(parts)}</feed>"
    )


# Cut off in the middle of its first item, with a bare "&": not XML, and no entry to recover.
MALFORMED_FEED = '<?xml version="1.0"?><rss version="2.0"><channel><title>Broken & unescaped</title><it'


@dataclass
class Resource:
    """A fixed response: body, content type, extra headers."""

    body: bytes
    content_type: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    modified: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))


@dataclass(frozen=True)
class Recorded:
    """One request the site received."""

    path: str
    headers: dict[str, str]
    status: int


class WebSite:
    """A threaded HTTP server on 127.0.0.1 serving resources put into it, plus the traps."""

    HUGE = 100 * 1024 * 1024

    def __init__(self) -> None:
        self.resources: dict[str, Resource] = {}
        self.requests: list[Recorded] = []
        self.flaky_failures = 0  # how many more times /flaky answers 503
        self.page_delay = 0.0  # seconds every /news/ page takes to answer (a slow site)
        self.active = 0
        self.max_active = 0
        self.huge_sent = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        """Return the absolute URL of a path on this site."""
        return f"http://{host}:{self.port}{path}"

    def start(self) -> WebSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- content -------------------------------------------------------------------------------
    def put(self, path: str, body: str | bytes, content_type: str, **kwargs: Any) -> str:
        """Serve ``body`` at ``path``; return its URL."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        with self._lock:
            self.resources[path] = Resource(data, content_type, **kwargs)
        return self.url(path)

    def put_story(self, story: Story, outlet: str = "Coast Gazette") -> str:
        """Serve a story's page at /news/<slug>.html; return its URL."""
        return self.put(f"/news/{story.slug}.html", article_page(story, outlet), "text/html; charset=utf-8")

    def put_feed(self, path: str, items: list[Item], kind: str = "rss", title: str = "Coast Gazette") -> str:
        """Serve a feed of these items (RSS 2.0 or Atom); return its URL."""
        text = (rss if kind == "rss" else atom)(title, self.url("/"), items)
        media = "application/rss+xml" if kind == "rss" else "application/atom+xml"
        return self.put(path, text, f"{media}; charset=utf-8")

    def hits(self, path: str) -> list[Recorded]:
        """Return the requests for a path."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def record(self, path: str, headers: dict[str, str], status: int) -> None:
        with self._lock:
            self.requests.append(Recorded(path, headers, status))


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


def _handler(site: WebSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def handle(self) -> None:
            # A client that gives up on a trap (huge, slow) resets the connection; that is fine.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                super().handle()

        def do_GET(self) -> None:
            with site._lock:
                site.active += 1
                site.max_active = max(site.max_active, site.active)
            try:
                self._serve()
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                with site._lock:
                    site.active -= 1

        def _send(self, status: int, body: bytes = b"", content_type: str = "text/plain", **headers: str) -> None:
            site.record(self.path, dict(self.headers.items()), status)
            self.send_response(status)
            if status != 304:
                self.send_header("Content-Type", content_type)
            for key, value in headers.items():
                self.send_header(key.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _serve(self) -> None:
            path = self.path
            if path == "/slow":
                return self._slow()
            if path.startswith("/news/") and site.page_delay:
                time.sleep(site.page_delay)
            if path == "/huge":
                return self._huge(declared=False)
            if path == "/huge-declared":
                return self._huge(declared=True)
            if path == "/sleep":
                time.sleep(0.3)
                return self._send(200, b"<html><body><p>slept</p></body></html>", "text/html")
            if path.startswith("/redirect/"):
                left = int(path.rsplit("/", 1)[1])
                target = "/news/lighthouse.html" if left <= 1 else f"/redirect/{left - 1}"
                return self._send(302, Location=target)
            if path == "/loop-a":
                return self._send(301, Location="/loop-b")
            if path == "/loop-b":
                return self._send(301, Location=site.url("/loop-a"))
            if path == "/to-file":
                return self._send(302, Location="file:///etc/passwd")
            if path == "/flaky":
                with site._lock:
                    failing = site.flaky_failures > 0
                    site.flaky_failures -= 1 if failing else 0
                if failing:
                    return self._send(503, b"busy", Retry_After="0")
                return self._send(200, b"<html><body><p>finally</p></body></html>", "text/html")
            if path == "/always-500":
                return self._send(500, b"broken")
            with site._lock:
                resource = site.resources.get(path)
            if resource is None:
                return self._send(404, b"not found")
            if resource.status in (301, 302, 307, 308):
                return self._send(resource.status, **resource.headers)
            etag = _etag(resource.body)
            modified = format_datetime(resource.modified, usegmt=True)
            if self.headers.get("If-None-Match") == etag or (
                "If-None-Match" not in self.headers and self.headers.get("If-Modified-Since") == modified
            ):
                return self._send(304, ETag=etag, Last_Modified=modified)
            return self._send(
                resource.status,
                resource.body,
                resource.content_type,
                ETag=etag,
                Last_Modified=modified,
                **resource.headers,
            )

        def _slow(self) -> None:
            site.record(self.path, dict(self.headers.items()), 200)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)

        def _huge(self, declared: bool) -> None:
            site.record(self.path, dict(self.headers.items()), 200)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            if declared:
                self.send_header("Content-Length", str(WebSite.HUGE))
            else:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"<p>" + b"news " * 13_000 + b"</p>\n"
            while site.huge_sent < WebSite.HUGE:
                if declared:
                    self.wfile.write(chunk)
                else:
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                site.huge_sent += len(chunk)
            if not declared:
                self.wfile.write(b"0\r\n\r\n")

    return Handler


@pytest.fixture(name="site")
def site_fixture() -> Iterator[WebSite]:
    """Return a running loopback web site; it stops after the test."""
    site = WebSite().start()
    yield site
    site.stop()
