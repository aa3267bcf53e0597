"""Turn text copied from a news web page into a title, a date and a clean body.

A copied page holds the headline on its first line, often a standfirst and a dateline, then the
paragraphs, interrupted by page furniture: "Read more from …" blocks with related headlines,
promotions for the outlet's app or newsletter, share prompts. The rules below recognise furniture
by its shape (short lines without a full stop, calls to action, a block header followed by
headlines), not by any one page's wording.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

__all__ = ["CleanText", "clean_page_text", "is_furniture_line", "parse_dateline", "reads_as_prose"]

_MONTHS = {
    m: i + 1
    for i, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ]
    )
    for m in names
}
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_WEEKDAY = r"(?:(?:mon|tues?|wed(?:nes)?|thu(?:rs)?|fri|sat(?:ur)?|sun)(?:day)?\.?,?\s+)?"
_TIME = r"(?:[,\s]+(?:at\s+)?(?P<hour>\d{1,2})[:.](?P<minute>\d{2})\s*(?P<ampm>[ap]\.?m\.?)?)?"
_ZONE = r"(?:[,\s]+(?P<zone>UK|GMT|BST|UTC|Z|ET|EST|EDT|CET|CEST|[+-]\d{2}:?\d{2}))?"
_LABEL = r"(?:(?:published|updated|posted|first published|last updated|date)\s*(?:on)?\s*:?\s*)?"
_DATELINE_PATTERNS = [
    re.compile(
        rf"^{_LABEL}{_WEEKDAY}(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+{_MONTH},?\s+(?P<year>\d{{4}}){_TIME}{_ZONE}\.?$",
        re.I,
    ),
    re.compile(
        rf"^{_LABEL}{_WEEKDAY}{_MONTH}\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<year>\d{{4}}){_TIME}{_ZONE}\.?$",
        re.I,
    ),
    re.compile(
        rf"^{_LABEL}(?P<year>\d{{4}})-(?P<mnum>\d{{2}})-(?P<day>\d{{2}})(?:[T\s](?P<hour>\d{{2}}):(?P<minute>\d{{2}})(?::\d{{2}})?)?{_ZONE}$",
        re.I,
    ),
]
_ZONES = {
    # "UK" is the local time of the day; "GMT" and "BST" name a fixed offset.
    "UK": "Europe/London",
    "GMT": "+00:00",
    "BST": "+01:00",
    "UTC": "UTC",
    "Z": "UTC",
    "ET": "America/New_York",
    "EST": "America/New_York",
    "EDT": "America/New_York",
    "CET": "Europe/Paris",
    "CEST": "Europe/Paris",
}

# A header that introduces a list of links to other stories.
_BLOCK_HEADER = re.compile(
    r"^(?:read (?:more|next|also)|more (?:from|on|stories|news)"
    r"|related(?: (?:stories|articles|content|coverage|links))?"
    r"|see also|also read|most (?:read|popular|viewed)|recommended(?: for you)?|you may also like"
    r"|top stories|latest (?:news|stories)|trending|in other news|more like this|editor'?s picks)\b[^.]*:?$",
    re.I,
)
# Calls to action of the page itself: apps, newsletters, alerts, sharing, following, cookies.
_PROMO = re.compile(
    r"\b(?:app|apps|newsletters?|sign[- ]?up|subscribe|subscription|download|install|follow us|"
    r"breaking news alerts?|get (?:the )?(?:latest|breaking)|be the first|click here|tap here|"
    r"share (?:this|on)|advertisement|sponsored|cookies?|listen to (?:this|the)|watch (?:live|now)|"
    r"log ?in|register (?:now|for free)|free trial|podcast|whatsapp channel|inbox|top stories)\b",
    re.I,
)
_SENTENCE_END = re.compile(r"[.!…\"”’)]\s*$")


@dataclass(frozen=True)
class CleanText:
    """What :func:`clean_page_text` recovered from a copied page."""

    title: str | None
    standfirst: str | None
    published: datetime | None
    text: str
    dropped: tuple[str, ...]


def parse_dateline(line: str) -> datetime | None:
    """Return the date a dateline such as "Monday 13 January 2025 10:58, UK" names, else None."""
    stripped = line.strip()
    if len(stripped) > 80:
        return None
    for pattern in _DATELINE_PATTERNS:
        m = pattern.match(stripped)
        if not m:
            continue
        groups = m.groupdict()
        month = int(groups["mnum"]) if groups.get("mnum") else _MONTHS[groups["month"].lower()]
        hour = int(groups["hour"]) if groups.get("hour") else 0
        minute = int(groups["minute"]) if groups.get("minute") else 0
        ampm = (groups.get("ampm") or "").replace(".", "").lower()
        if ampm == "pm" and hour < 12:
            hour += 12
        elif ampm == "am" and hour == 12:
            hour = 0
        zone: str | None = groups.get("zone")
        try:
            if zone and zone.upper() in _ZONES:
                zone = _ZONES[zone.upper()]
            if zone and zone[0] not in "+-":
                tz: timezone | ZoneInfo = ZoneInfo(zone)
            elif zone:
                sign = 1 if zone[0] == "+" else -1
                digits = zone[1:].replace(":", "")
                from datetime import timedelta

                tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
            else:
                tz = timezone.utc
            return datetime(int(groups["year"]), month, int(groups["day"]), hour, minute, tzinfo=tz)
        except ValueError:
            return None
    return None


def _words(line: str) -> int:
    return len(line.split())


def _looks_like_headline(line: str) -> bool:
    """Short, no full stop at the end: a link text, not a paragraph."""
    return 0 < _words(line) <= 18 and not _SENTENCE_END.search(line)


def reads_as_prose(paragraphs: list[str]) -> bool:
    """Return True when some paragraph is a sentence, not a menu item, label or button.

    A page of navigation and a form ("Home", "About", "Email", "Sign in") has text, but no
    article: every line of it is short and ends without a full stop.
    """
    return any(_words(p) >= 4 and not _looks_like_headline(p) for p in paragraphs)


def is_furniture_line(line: str) -> bool:
    """Return True for a lone line of page furniture: a promotion or a block header."""
    stripped = line.strip()
    if not stripped:
        return True
    if _BLOCK_HEADER.match(stripped):
        return True
    return _words(stripped) <= 14 and not _SENTENCE_END.search(stripped) and bool(_PROMO.search(stripped))


def clean_page_text(raw: str) -> CleanText:
    """Split a copied page into title, standfirst, date and body, dropping page furniture."""
    lines = [ln.strip() for ln in raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    lines = [ln.replace("\u00a0", " ") for ln in lines]
    nonempty = [ln for ln in lines if ln]
    if not nonempty:
        return CleanText(None, None, None, "", ())
    title: str | None = None
    published: datetime | None = None
    standfirst: str | None = None
    body_start = 0
    # The headline: a first line that is short and does not end like a sentence (nor is a date).
    first = nonempty[0]
    if _words(first) <= 25 and not first.endswith((".", "!")) and parse_dateline(first) is None:
        title = first
        body_start = 1
    # A dateline within the next two lines; the line between the title and it is the standfirst.
    # Only the dateline itself leaves the text: the standfirst and the lede after it are the
    # article's own words and stay in its body, searchable and quotable.
    standfirst_at: int | None = None
    for offset in (0, 1):
        idx = body_start + offset
        if idx < len(nonempty) and (date := parse_dateline(nonempty[idx])) is not None:
            published = date
            if offset == 1:
                standfirst = nonempty[body_start]
                standfirst_at = 0
            nonempty = nonempty[:idx] + nonempty[idx + 1 :]
            break
    body_lines = nonempty[body_start:]
    kept: list[str] = []
    dropped: list[str] = []
    i = 0
    while i < len(body_lines):
        line = body_lines[i]
        if i == standfirst_at:
            kept.append(line)  # placed by position, not by shape: never taken for furniture
            i += 1
            continue
        if _BLOCK_HEADER.match(line) and (_looks_like_headline(line) or line.endswith(":")):
            dropped.append(line)
            i += 1
            # The headlines listed under the header, up to the next real paragraph.
            while i < len(body_lines) and _looks_like_headline(body_lines[i]):
                dropped.append(body_lines[i])
                i += 1
            continue
        if is_furniture_line(line):
            dropped.append(line)
        else:
            # A dateline repeated further down ("Updated ...") is furniture too.
            if parse_dateline(line) is not None:
                dropped.append(line)
            else:
                kept.append(line)
        i += 1
    if standfirst is None and kept and title is not None and parse_dateline(kept[0]) is None:
        standfirst = kept[0] if _words(kept[0]) >= 8 else None
    return CleanText(title, standfirst, published, "\n\n".join(kept), tuple(dropped))
