"""Page copies: title, standfirst and dateline recognised, furniture dropped by general rules."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from retrieval.ingest.textclean import clean_page_text, is_furniture_line, parse_dateline

from .conftest import FIXTURES

EXPECTED = json.loads((FIXTURES / "page_copy_expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_page_copy_is_cleaned(name: str) -> None:
    want = EXPECTED[name]
    got = clean_page_text((FIXTURES / name).read_text())
    assert got.title == want["title"]
    assert got.standfirst == want["standfirst"]
    assert got.published is not None
    assert got.published.isoformat() == want["published"]
    for line in want["furniture"]:
        assert line in got.dropped
        assert line not in got.text
    assert want["dateline"] not in got.text
    paragraphs = got.text.split("\n\n")
    assert len(paragraphs) == want["paragraph_count"]
    # The standfirst is the article's own words: the first paragraph, then the lede.
    assert paragraphs[0] == want["standfirst"]
    assert paragraphs[1].startswith(want["first_paragraph_starts"])
    assert paragraphs[-1].startswith(want["last_paragraph_starts"])
    assert "" not in paragraphs


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Monday 13 January 2025 10:58, UK", datetime(2025, 1, 13, 10, 58, tzinfo=timezone.utc)),
        ("Published: 12 February 2025", datetime(2025, 2, 12, tzinfo=timezone.utc)),
        ("March 4, 2025", datetime(2025, 3, 4, tzinfo=timezone.utc)),
        ("2025-06-01T08:30", datetime(2025, 6, 1, 8, 30, tzinfo=timezone.utc)),
    ],
)
def test_dateline_formats_are_parsed(line: str, expected: datetime) -> None:
    got = parse_dateline(line)
    assert got is not None
    assert got == expected


def test_summer_uk_dateline_is_british_summer_time() -> None:
    got = parse_dateline("Friday 4 July 2025 09:00, UK")
    assert got is not None and got.utcoffset() is not None
    assert got.isoformat() == "2025-07-04T09:00:00+01:00"


@pytest.mark.parametrize(
    "line",
    [
        "Subscribe to the Morning Brief newsletter",
        "Download our app for the latest updates",
        "Follow us on social media",
        "Read more:",
    ],
)
def test_promotions_are_furniture(line: str) -> None:
    assert is_furniture_line(line)


@pytest.mark.parametrize(
    "line",
    [
        "The app was downloaded 3 million times in its first week, the company said.",
        "Officials said the newsletter had been sent to every household.",
        "He said he would follow the court's decision.",
    ],
)
def test_sentences_that_mention_promo_words_are_kept(line: str) -> None:
    assert not is_furniture_line(line)
    assert line in clean_page_text(f"A headline\n{line}\nAnother paragraph of the story ends here.").text
