"""How a message addresses the bot: mentions, commands and deep-link payloads (pure text work)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from telegram import MessageEntity

__all__ = ["mentions_bot", "question_from_payload", "strip_mentions"]

_PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _span(text: str, entity: MessageEntity) -> tuple[int, int]:
    """Return the Python string slice of an entity whose offsets count UTF-16 units."""
    units = text.encode("utf-16-le", "surrogatepass")
    before = units[: entity.offset * 2].decode("utf-16-le", "surrogatepass")
    inside = units[entity.offset * 2 : (entity.offset + entity.length) * 2].decode("utf-16-le", "surrogatepass")
    return len(before), len(before) + len(inside)


def _bot_mentions(text: str, entities: Sequence[MessageEntity], username: str) -> list[tuple[int, int]]:
    wanted = "@" + username.lower()
    spans = []
    for entity in entities:
        if entity.type == MessageEntity.MENTION:
            start, end = _span(text, entity)
            if text[start:end].lower() == wanted:
                spans.append((start, end))
    return spans


def mentions_bot(text: str, entities: Sequence[MessageEntity], username: str) -> bool:
    """Return True if the text mentions ``@username``."""
    return bool(username) and bool(_bot_mentions(text, entities, username))


def strip_mentions(text: str, entities: Sequence[MessageEntity], username: str) -> str:
    """Return the text without its mentions of ``@username``, whitespace tidied."""
    for start, end in sorted(_bot_mentions(text, entities, username), reverse=True):
        text = text[:start] + " " + text[end:]
    text = re.sub(r"[^\S\n]+", " ", text).strip()
    # "@bot, what happened?" leaves a dangling comma or colon in front.
    return text.lstrip(",:;").strip()


def question_from_payload(payload: str) -> str | None:
    """Return the question carried by a /start deep link (underscores stand for spaces)."""
    if not _PAYLOAD.fullmatch(payload):
        return None
    return payload.replace("_", " ").strip() or None
