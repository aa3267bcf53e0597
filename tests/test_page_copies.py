"""Nothing a page copy says is lost: every body line and the standfirst reach the stored text.

The examples are short pages in the shapes people copy from news sites; the property test makes
many more of them (title, optional standfirst, one of the recognised datelines, 1-5 body lines,
optional furniture blocks between them) and reads each through the real loader.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrieval.errors import LoaderError
from retrieval.ingest.loaders import load_file
from retrieval.ingest.textclean import clean_page_text
from retrieval.models.encoder import Encoder

TITLE = "Harbour ferry returns to service after winter repairs"
STANDFIRST = "The Tern, the oldest boat on the Lowmouth crossing, carried its first passengers in four months."
LEDE = "The ferry left the north pier at seven in the morning with 41 passengers and two bicycles on board."
SECOND = "Its captain, Orla Mbeki, said the new engine was quieter than the old one by a wide margin."


def _load(tmp_path: Path, text: str) -> str:
    path = tmp_path / "page.txt"
    path.write_text(text, encoding="utf-8")
    [article], problems = load_file(path)
    assert problems == []
    return article.text


def test_a_lede_right_after_the_dateline_is_kept(tmp_path: Path) -> None:
    text = _load(tmp_path, f"{TITLE}\nMonday 14 July 2025 10:58, UK\n{LEDE}\n{SECOND}\n")
    assert text.split("\n\n") == [LEDE, SECOND]


def test_a_standfirst_between_title_and_dateline_is_kept_and_searchable(tmp_path: Path) -> None:
    cleaned = clean_page_text(f"{TITLE}\n{STANDFIRST}\nMonday 14 July 2025 10:58, UK\n{LEDE}\n{SECOND}\n")
    assert cleaned.standfirst == STANDFIRST
    assert cleaned.title == TITLE
    assert cleaned.published is not None and cleaned.published.isoformat() == "2025-07-14T10:58:00+01:00"
    assert cleaned.text.split("\n\n") == [STANDFIRST, LEDE, SECOND]
    assert _load(tmp_path, f"{TITLE}\n{STANDFIRST}\nMonday 14 July 2025 10:58, UK\n{LEDE}\n").startswith(STANDFIRST)


def test_a_one_paragraph_body_is_an_article(tmp_path: Path) -> None:
    assert _load(tmp_path, f"{TITLE}\nPublished: 3 June 2025\n{LEDE}\n") == LEDE


def test_a_page_of_title_and_dateline_alone_has_no_article_text(tmp_path: Path) -> None:
    path = tmp_path / "page.txt"
    path.write_text(f"{TITLE}\n2025-06-03\n", encoding="utf-8")
    with pytest.raises(LoaderError, match="no article text found"):
        load_file(path)


def test_a_dateline_on_the_first_line_is_not_taken_for_the_title() -> None:
    cleaned = clean_page_text(f"Tuesday 1 April 2025 09:00, UK\n{LEDE}\n{SECOND}\n")
    assert cleaned.title is None
    assert cleaned.published is not None
    assert cleaned.text.split("\n\n") == [LEDE, SECOND]


# -- generated pages --------------------------------------------------------------------------

# Body and standfirst words, furniture words: apart, so that a furniture line can never be a
# substring of a body line by chance. Promotion words ("app", "newsletter") are in the body's
# vocabulary on purpose: a sentence that mentions them is still news.
_BODY_WORDS = [
    "the",
    "council",
    "said",
    "harbour",
    "ferry",
    "engine",
    "tide",
    "crews",
    "repairs",
    "winter",
    "spring",
    "workers",
    "union",
    "mayor",
    "budget",
    "school",
    "bridge",
    "rain",
    "app",
    "newsletter",
    "follow",
    "share",
    "download",
    "river",
    "market",
    "price",
    "rose",
    "fell",
    "by",
    "per",
    "cent",
    "after",
    "before",
    "during",
    "weeks",
    "months",
    "41",
    "2,300",
    "£12m",
    "Ms",
    "Okafor",
    "Lowmouth",
    "Tern",
    "north",
    "pier",
]
_HEADLINE_WORDS = [
    "zebra",
    "quartz",
    "violet",
    "kiln",
    "orchard",
    "comet",
    "falcon",
    "lantern",
    "marble",
    "velvet",
    "pebble",
    "canyon",
]
_OUTLETS = ("The Example Post", "Valley Courier", "Lowmouth Evening Star")

_DATELINES = (
    "Monday 14 July 2025 10:58, UK",
    "Tuesday 4 March 2025 14:05, UK",
    "Published: 12 February 2025",
    "Updated 5 May 2025, 08:15 GMT",
    "March 4, 2025",
    "June 18, 2025 at 9:30 am ET",
    "2025-06-01",
    "2025-06-01T08:30",
    "Posted on 2 January 2025",
)


@st.composite
def _sentence(draw: st.DrawFn, low: int = 5, high: int = 30) -> str:
    words = draw(st.lists(st.sampled_from(_BODY_WORDS), min_size=low, max_size=high))
    end = draw(st.sampled_from(".!") | st.just('."') | st.just("…"))
    return words[0].capitalize() + (" " + " ".join(words[1:]) if len(words) > 1 else "") + end


@st.composite
def _title(draw: st.DrawFn) -> str:
    words = draw(st.lists(st.sampled_from(_BODY_WORDS), min_size=3, max_size=14))
    return " ".join(words).capitalize() + draw(st.sampled_from(("", "?")))


@st.composite
def _furniture(draw: st.DrawFn) -> list[str]:
    outlet = draw(st.sampled_from(_OUTLETS))
    kind = draw(st.sampled_from(("related", "promo")))
    if kind == "related":
        header = draw(st.sampled_from((f"Read more from {outlet}:", "Related:", "Most read", "More on this story")))
        headlines = draw(
            st.lists(
                st.lists(st.sampled_from(_HEADLINE_WORDS), min_size=3, max_size=10).map(
                    lambda ws: " ".join(ws).capitalize()
                ),
                min_size=1,
                max_size=3,
            )
        )
        return [header, *headlines]
    promos = (
        f"Download the {outlet} app",
        "Sign up to our newsletter",
        "Be the first to get Breaking News",
        f"Install the {outlet} app for free",
        "Follow us on social media",
        "Get the day's top stories in your inbox",
    )
    return draw(st.lists(st.sampled_from(promos), min_size=1, max_size=2, unique=True))


@st.composite
def _page(draw: st.DrawFn) -> tuple[str, str | None, list[str], list[str]]:
    title = draw(_title())
    standfirst = draw(st.none() | _sentence(8, 30))
    dateline = draw(st.sampled_from(_DATELINES))
    body = draw(st.lists(_sentence(), min_size=1, max_size=5, unique=True))
    lines = [title] + ([standfirst] if standfirst else []) + [dateline]
    furniture: list[str] = []
    for paragraph in body:
        lines.append(paragraph)
        if draw(st.booleans()):
            block = draw(_furniture())
            furniture += block
            lines += block
        if draw(st.booleans()):
            lines.append("")  # blank lines between paragraphs, as copies have them
    return "\n".join(lines) + "\n", standfirst, body, furniture


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_page())
def test_every_body_line_and_the_standfirst_are_stored_and_no_furniture(
    page: tuple[str, str | None, list[str], list[str]],
) -> None:
    raw, standfirst, body, furniture = page
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "page.txt"
        path.write_text(raw, encoding="utf-8")
        [article], _ = load_file(path)
    paragraphs = article.text.split("\n\n")
    for line in body:
        assert line in paragraphs, (line, raw)
    if standfirst is not None:
        assert paragraphs[0] == standfirst, raw
    for line in furniture:
        assert line not in article.text, (line, raw)
    assert article.published is not None, raw


def test_a_question_about_the_standfirst_is_answered_from_it(tmp_path: Path, encoder: Encoder) -> None:
    from retrieval.config import Config
    from retrieval.newsindex import NewsIndex

    page = tmp_path / "ferry.txt"
    page.write_text(
        f"{TITLE}\n{STANDFIRST}\nMonday 14 July 2025 10:58, UK\n{LEDE}\n{SECOND}\n"
        "Repairs at the yard in Kessock took longer than planned because a part had to be made by hand.\n",
        encoding="utf-8",
    )
    with NewsIndex.open(Config(data_dir=str(tmp_path / "data")), encoder=encoder, create=True) as index:
        index.ingest(load_file(page)[0])
        answer = index.ask("How long was the Tern out of service?")
    assert answer.answered
    assert "first passengers in four months" in answer.quotes[0].marked
