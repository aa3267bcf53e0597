"""A strict parser of Telegram's HTML parse mode, as the fake Bot API applies it.

It accepts exactly the tags and entities the Bot API documents and refuses the rest the way
Telegram does (a 400 "can't parse entities"). It is stricter than Telegram in one place: a bare
``&`` or ``>`` is refused even where Telegram would guess, because the docs say to escape them.
Offsets and lengths of the returned entities are in UTF-16 code units.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HtmlError", "ParsedText", "parse_html", "utf16_len"]

# tag -> (entity type, allowed attributes)
_TAGS: dict[str, tuple[str, frozenset[str]]] = {
    "b": ("bold", frozenset()),
    "strong": ("bold", frozenset()),
    "i": ("italic", frozenset()),
    "em": ("italic", frozenset()),
    "u": ("underline", frozenset()),
    "ins": ("underline", frozenset()),
    "s": ("strikethrough", frozenset()),
    "strike": ("strikethrough", frozenset()),
    "del": ("strikethrough", frozenset()),
    "span": ("spoiler", frozenset({"class"})),
    "tg-spoiler": ("spoiler", frozenset()),
    "a": ("text_link", frozenset({"href"})),
    "code": ("code", frozenset({"class"})),
    "pre": ("pre", frozenset()),
    "blockquote": ("blockquote", frozenset({"expandable"})),
    "tg-emoji": ("custom_emoji", frozenset({"emoji-id"})),
}
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_TAG = re.compile(
    r"<(?P<close>/?)(?P<name>[A-Za-z][A-Za-z0-9-]*)"
    r"(?P<attrs>(?:\s+[A-Za-z][A-Za-z0-9-]*(?:\s*=\s*(?:\"[^\"<>]*\"|'[^'<>]*'|[^\s\"'<>=`]+))?)*)"
    r"\s*>"
)
_ATTR = re.compile(r"([A-Za-z][A-Za-z0-9-]*)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'<>=`]+)))?")
_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot)|#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6}));")
_URL = re.compile(r"^(https?://[^\s/?#]+[^\s]*|tg://[^\s]+|mailto:[^\s]+)$")


class HtmlError(ValueError):
    """Telegram cannot parse the text; the message is Telegram's wording."""


def utf16_len(text: str) -> int:
    """Return the length of ``text`` in UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


@dataclass
class ParsedText:
    """Plain text and its entities, as Telegram stores a message."""

    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)

    @property
    def units(self) -> int:
        """Return the text length in UTF-16 code units."""
        return utf16_len(self.text)


@dataclass
class _Open:
    name: str
    entity: dict[str, Any]
    start: int  # in UTF-16 units


def _byte_offset(source: str, index: int) -> int:
    return len(source[:index].encode("utf-8"))


def _decode_entity(match: re.Match[str]) -> str:
    named, dec, hexa = match.groups()
    if named:
        return _NAMED[named]
    code = int(dec) if dec else int(hexa, 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        raise HtmlError(f"Can't parse entities: invalid character reference &#{code};")
    return chr(code)


def _attributes(source: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in _ATTR.finditer(source):
        raw = next((g for g in m.groups()[1:] if g is not None), "")
        out[m.group(1).lower()] = _ENTITY.sub(_decode_entity, raw)
    return out


def parse_html(source: str) -> ParsedText:
    """Parse Telegram HTML into text and entities, or raise HtmlError."""
    out: list[str] = []
    units = 0
    stack: list[_Open] = []
    entities: list[dict[str, Any]] = []
    i = 0
    while i < len(source):
        ch = source[i]
        if ch == "<":
            m = _TAG.match(source, i)
            if not m:
                raise HtmlError(f"Can't parse entities: unsupported start tag at byte offset {_byte_offset(source, i)}")
            name = m.group("name").lower()
            if name not in _TAGS:
                raise HtmlError(
                    f'Can\'t parse entities: unsupported start tag "{name}" at byte offset {_byte_offset(source, i)}'
                )
            if m.group("close"):
                if m.group("attrs").strip():
                    raise HtmlError("Can't parse entities: end tag with attributes")
                if not stack:
                    raise HtmlError(
                        f"Can't parse entities: unexpected end tag at byte offset {_byte_offset(source, i)}"
                    )
                top = stack.pop()
                if top.name != name:
                    raise HtmlError(
                        f"Can't parse entities: unmatched end tag at byte offset "
                        f'{_byte_offset(source, i)}, expected "</{top.name}>", found "</{name}>"'
                    )
                length = units - top.start
                if length:
                    top.entity.update(offset=top.start, length=length)
                    entities.append(top.entity)
            else:
                stack.append(_Open(name, _open_entity(name, m.group("attrs"), stack), units))
            i = m.end()
        elif ch == "&":
            m = _ENTITY.match(source, i)
            if not m:
                raise HtmlError(
                    "Can't parse entities: character '&' is reserved and must be escaped "
                    f"at byte offset {_byte_offset(source, i)}"
                )
            decoded = _decode_entity(m)
            out.append(decoded)
            units += utf16_len(decoded)
            i = m.end()
        elif ch == ">":
            raise HtmlError(
                "Can't parse entities: character '>' is reserved and must be escaped "
                f"at byte offset {_byte_offset(source, i)}"
            )
        else:
            out.append(ch)
            units += utf16_len(ch)
            i += 1
    if stack:
        raise HtmlError(f"Can't parse entities: can't find end tag corresponding to start tag \"{stack[-1].name}\"")
    return _strip(ParsedText("".join(out), sorted(entities, key=lambda e: (e["offset"], -e["length"]))))


def _open_entity(name: str, raw_attrs: str, stack: list[_Open]) -> dict[str, Any]:
    kind, allowed = _TAGS[name]
    attrs = _attributes(raw_attrs)
    unknown = set(attrs) - allowed
    if unknown:
        raise HtmlError(f'Can\'t parse entities: unsupported attribute "{sorted(unknown)[0]}"')
    open_kinds = {_TAGS[o.name][0] for o in stack}
    if kind in open_kinds and kind in ("text_link", "blockquote", "pre", "code"):
        raise HtmlError(f'Can\'t parse entities: nested "{name}" entities are not allowed')
    if open_kinds & {"pre", "code"} and not (kind == "code" and "pre" in open_kinds):
        raise HtmlError("Can't parse entities: entities inside code or pre are not allowed")
    entity: dict[str, Any] = {"type": kind}
    if name == "a":
        href = attrs.get("href", "")
        if not _URL.match(href):
            raise HtmlError(f"Can't parse entities: wrong HTTP URL {href!r}")
        entity["url"] = href
    elif name == "span" and attrs.get("class") != "tg-spoiler":
        raise HtmlError('Can\'t parse entities: tag "span" must have class "tg-spoiler"')
    elif name == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    elif name == "tg-emoji":
        if not attrs.get("emoji-id", "").isdigit():
            raise HtmlError("Can't parse entities: custom emoji identifier expected")
        entity["custom_emoji_id"] = attrs["emoji-id"]
    return entity


def _strip(parsed: ParsedText) -> ParsedText:
    """Trim leading and trailing whitespace and clip entities, as Telegram does."""
    text = parsed.text
    lead = len(text) - len(text.lstrip())
    stripped = text.strip()
    shift = utf16_len(text[:lead])
    total = utf16_len(stripped)
    entities = []
    for e in parsed.entities:
        start = max(0, e["offset"] - shift)
        end = min(total, e["offset"] - shift + e["length"])
        if end > start:
            entities.append({**e, "offset": start, "length": end - start})
    return ParsedText(stripped, entities)
