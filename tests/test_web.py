"""Fetching URLs safely: schemes, addresses, redirects, size and time caps, retries, politeness."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence

import pytest

import retrieval.ingest.vetting as vetting
from retrieval.config import WebConfig
from retrieval.ingest.web import BlockedURLError, Fetcher, FetchError, TooLargeError, Validators, check_address
from tests.web_fixtures import STORIES, WebSite, site_fixture  # noqa: F401

pytestmark = pytest.mark.timeout(60)

ALLOW = WebConfig(allow_private_networks=True, timeout=2.0, backoff=0.01)
STRICT = WebConfig(timeout=2.0, backoff=0.01)


def resolver(table: dict[str, Sequence[str]]) -> Callable[[str, int], Sequence[str]]:
    """Return a resolver hook answering from ``table`` (names not in it resolve to themselves)."""

    def resolve(host: str, port: int) -> Sequence[str]:
        return table.get(host, [host])

    return resolve


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "224.0.0.1",
        "255.255.255.255",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    with pytest.raises(BlockedURLError, match="refused"):
        check_address(address, "example.test")


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    check_address(address)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("ftp://example.org/x", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("http:///nohost", "no host"),
        ("http://127.0.0.1/", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[::1]:8080/", "loopback"),
        ("http://10.0.0.8/admin", "private"),
    ],
)
def test_unsafe_urls_are_refused_before_any_request(url: str, reason: str) -> None:
    with Fetcher(STRICT) as fetcher, pytest.raises(BlockedURLError, match=reason):
        fetcher.fetch(url)


def test_a_public_looking_name_that_resolves_to_a_private_address_is_refused(site: WebSite) -> None:
    resolve = resolver({"news.example.com": ["10.20.30.40"], "mixed.example.com": ["93.184.216.34", "127.0.0.1"]})
    with Fetcher(STRICT, resolve=resolve) as fetcher:
        with pytest.raises(BlockedURLError, match=r"news\.example\.com \(10\.20\.30\.40\) is a private"):
            fetcher.fetch("http://news.example.com/story")
        with pytest.raises(BlockedURLError, match="loopback"):
            fetcher.fetch("http://mixed.example.com/story")


def test_the_local_site_is_refused_unless_private_networks_are_allowed(site: WebSite) -> None:
    url = site.put_story(STORIES[0])
    with Fetcher(STRICT) as fetcher, pytest.raises(BlockedURLError, match="allow_private_networks"):
        fetcher.fetch(url)
    assert site.requests == [], "a refused URL must not be requested at all"
    with Fetcher(ALLOW) as fetcher:
        page = fetcher.fetch(url)
    assert page.status == 200 and b"Grey Point" in page.body


def test_the_vetted_address_is_connected_to_with_the_original_host_header(site: WebSite) -> None:
    site.put_story(STORIES[0])
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    with Fetcher(ALLOW, resolve=resolve) as fetcher:
        page = fetcher.fetch(site.url("/news/lighthouse.html", host="news.example.com"))
    assert page.status == 200
    assert calls == ["news.example.com"]
    [request] = site.requests
    assert request.headers["Host"] == f"news.example.com:{site.port}"
    assert request.headers["User-Agent"] == ALLOW.user_agent


def test_each_redirect_hop_is_checked_again(site: WebSite, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only "public.example" passes the address check; the redirect points at another name.
    real = vetting.check_address

    def only_public_example(address: str, host: str = "") -> None:
        if host != "public.example":
            real(address, host)

    monkeypatch.setattr(vetting, "check_address", only_public_example)
    site.put("/go", b"", "text/html", status=302, headers={"Location": site.url("/secret", host="internal.example")})
    site.put("/secret", "<p>secret</p>", "text/html")
    resolve = resolver({"public.example": ["127.0.0.1"], "internal.example": ["127.0.0.1"]})
    with Fetcher(STRICT, resolve=resolve) as fetcher, pytest.raises(BlockedURLError, match=r"internal\.example"):
        fetcher.fetch(site.url("/go", host="public.example"))
    assert [r.path for r in site.requests] == ["/go"]


def test_a_redirect_to_a_file_url_is_refused(site: WebSite) -> None:
    with Fetcher(ALLOW) as fetcher, pytest.raises(BlockedURLError, match="only http and https"):
        fetcher.fetch(site.url("/to-file"))


def test_redirects_are_followed_up_to_the_cap(site: WebSite) -> None:
    site.put_story(STORIES[0])
    with Fetcher(ALLOW) as fetcher:
        page = fetcher.fetch(site.url("/redirect/5"))
    assert page.url.endswith("/news/lighthouse.html")
    with Fetcher(ALLOW) as fetcher, pytest.raises(FetchError, match="more than 5 redirects"):
        fetcher.fetch(site.url("/redirect/7"))


def test_a_redirect_loop_ends(site: WebSite) -> None:
    started = time.monotonic()
    with Fetcher(dataclasses.replace(ALLOW, max_redirects=50)) as fetcher, pytest.raises(FetchError, match="loop"):
        fetcher.fetch(site.url("/loop-a"))
    assert time.monotonic() - started < 5
    assert len(site.requests) == 2


def test_a_100_mb_page_is_cut_off_at_the_cap(site: WebSite) -> None:
    config = dataclasses.replace(ALLOW, max_bytes=1_000_000, timeout=10.0)
    started = time.monotonic()
    with Fetcher(config) as fetcher, pytest.raises(TooLargeError, match="cut off at the 1,000,000-byte limit"):
        fetcher.fetch(site.url("/huge"))
    assert time.monotonic() - started < 5
    # The server could only write what fits in the socket buffers after the client stopped.
    assert site.huge_sent < 20_000_000


def test_a_declared_100_mb_body_is_refused_before_reading(site: WebSite) -> None:
    config = dataclasses.replace(ALLOW, max_bytes=1_000_000)
    with Fetcher(config) as fetcher, pytest.raises(TooLargeError, match="104,857,600 bytes is over"):
        fetcher.fetch(site.url("/huge-declared"))


def test_a_slow_drip_is_cut_off_at_the_timeout(site: WebSite) -> None:
    config = dataclasses.replace(ALLOW, timeout=1.0, retries=0)
    started = time.monotonic()
    with Fetcher(config) as fetcher, pytest.raises(FetchError, match="longer than 1 s"):
        fetcher.fetch(site.url("/slow"))
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("content_type", ["image/png", "application/pdf", "application/octet-stream", "video/mp4"])
def test_non_text_content_types_are_refused(site: WebSite, content_type: str) -> None:
    url = site.put("/thing", b"\x89PNG\r\n\x1a\n\x00\x00", content_type)
    with Fetcher(ALLOW) as fetcher, pytest.raises(FetchError, match=f"content type {content_type} is not"):
        fetcher.fetch(url)


def test_text_types_are_read_with_their_charset(site: WebSite) -> None:
    url = site.put("/latin", "<p>café</p>".encode("latin-1"), "text/html; charset=ISO-8859-1")
    with Fetcher(ALLOW) as fetcher:
        page = fetcher.fetch(url)
    assert page.content_type == "text/html" and page.text() == "<p>café</p>"


def test_5xx_is_retried_with_back_off(site: WebSite) -> None:
    site.flaky_failures = 2
    delays: list[float] = []
    with Fetcher(dataclasses.replace(ALLOW, retries=2, backoff=0.5), sleep=delays.append) as fetcher:
        page = fetcher.fetch(site.url("/flaky"))
    assert page.status == 200
    assert [r.status for r in site.requests] == [503, 503, 200]
    assert delays == [0.5, 1.0]


def test_a_persistent_5xx_fails_after_the_retries_and_a_404_is_not_retried(site: WebSite) -> None:
    with Fetcher(dataclasses.replace(ALLOW, retries=2), sleep=lambda _: None) as fetcher:
        with pytest.raises(FetchError, match="HTTP 500"):
            fetcher.fetch(site.url("/always-500"))
        with pytest.raises(FetchError, match="HTTP 404"):
            fetcher.fetch(site.url("/missing"))
    assert len(site.hits("/always-500")) == 3
    assert len(site.hits("/missing")) == 1


def test_an_unchanged_resource_costs_a_304_with_conditional_headers(site: WebSite) -> None:
    url = site.put_story(STORIES[1])
    with Fetcher(ALLOW) as fetcher:
        first = fetcher.fetch(url)
        second = fetcher.fetch(url, validators=first.validators)
    assert first.validators.etag and first.validators.last_modified
    assert second.not_modified and second.body == b""
    request = site.requests[-1]
    assert request.headers["If-None-Match"] == first.validators.etag
    assert request.headers["If-Modified-Since"] == first.validators.last_modified
    only_date = Validators(last_modified=first.validators.last_modified)
    with Fetcher(ALLOW) as fetcher:
        assert fetcher.fetch(url, validators=only_date).not_modified


def test_requests_to_one_host_are_limited_to_per_host(site: WebSite) -> None:
    errors: list[BaseException] = []
    with Fetcher(dataclasses.replace(ALLOW, per_host=2)) as fetcher:

        def get() -> None:
            try:
                fetcher.fetch(site.url("/sleep"))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=get) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert len(site.hits("/sleep")) == 6
    assert site.max_active == 2


def test_environment_proxies_are_not_used(site: WebSite, monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy would connect on our behalf to an address we never vetted.
    monkeypatch.setenv("HTTP_PROXY", "http://10.9.9.9:3128")
    url = site.put_story(STORIES[0])
    with Fetcher(ALLOW) as fetcher:
        assert fetcher.fetch(url).status == 200
