"""Canonical URLs, stable article ids, and text-fragment links."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

__all__ = ["article_id", "canonical_url", "content_hash", "text_fragment_link"]

# Query parameters that only track where a reader came from; they never change the article.
_TRACKING = ("utm_", "fbclid", "gclid", "mc_cid", "mc_eid", "cid", "ref", "ref_src", "cmpid", "ocid")


def canonical_url(url: str) -> str:
    """Return ``url`` with the host lower-cased, default ports, fragments and tracking parameters gone."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))
    host = (parts.hostname or "").lower()
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not any(k.lower() == t or (t.endswith("_") and k.lower().startswith(t)) for t in _TRACKING)
    ]
    return urlunsplit((scheme, netloc, parts.path or "/", urlencode(query), ""))


def article_id(url: str | None, text: str) -> str:
    """Return a stable id: a hash of the canonical URL, else of the text."""
    basis = canonical_url(url) if url else "text:" + text
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:16]


def content_hash(text: str) -> str:
    """Return a hash of the exact text, to recognise copies of one article under other URLs."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _encode_term(term: str) -> str:
    # Text directives percent-encode everything outside the unreserved set, and '-', ',' and '&'
    # have meanings of their own inside the directive (URL Fragment Text Directives, section 3.3).
    return quote(term, safe="").replace("-", "%2D")


def text_fragment_link(url: str, sentence: str, words: int = 5) -> str:
    """Return a link that opens ``url`` scrolled to ``sentence`` (a ``#:~:text=`` directive).

    Long sentences use the ``start,end`` form with the first and last few words; URLs that are
    not http(s) are returned unchanged because browsers only honour the directive there.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return url
    tokens = sentence.split()
    if not tokens:
        return url
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))
    if len(tokens) <= 2 * words:
        directive = _encode_term(" ".join(tokens))
    else:
        directive = _encode_term(" ".join(tokens[:words])) + "," + _encode_term(" ".join(tokens[-words:]))
    return f"{base}#:~:text={directive}"
