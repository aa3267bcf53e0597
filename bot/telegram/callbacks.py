"""Callback data of the bot's buttons: small values, encoded within Telegram's 64 bytes."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_CALLBACK_BYTES", "Feedback", "More", "SourcesPage", "decode", "encode"]

MAX_CALLBACK_BYTES = 64


@dataclass(frozen=True)
class More:
    """Show the quotes after ``offset`` for a logged question."""

    question_id: int
    offset: int


@dataclass(frozen=True)
class Feedback:
    """A thumbs up (+1) or down (-1) on the quotes shown from ``offset`` for a question."""

    question_id: int
    offset: int
    value: int


@dataclass(frozen=True)
class SourcesPage:
    """Show the page of /sources that starts at ``offset``."""

    offset: int


Button = More | Feedback | SourcesPage


def encode(data: Button) -> str:
    """Return the callback data string of a button; raise ValueError if it would not fit."""
    match data:
        case More(qid, offset):
            text = f"m:{qid}:{offset}"
        case Feedback(qid, offset, value):
            text = f"f:{qid}:{offset}:{'u' if value > 0 else 'd'}"
        case SourcesPage(offset):
            text = f"s:{offset}"
    if len(text.encode("utf-8")) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data too long: {text!r}")
    return text


def decode(text: str | None) -> Button | None:
    """Return the button a callback data string stands for, None if it is not one of ours."""
    if not text:
        return None
    parts = text.split(":")
    try:
        numbers = [int(p) for p in parts[1:3]]
    except ValueError:
        return None
    if any(n < 0 for n in numbers):
        return None
    match parts:
        case ["m", _, _]:
            return More(numbers[0], numbers[1])
        case ["f", _, _, ("u" | "d") as vote]:
            return Feedback(numbers[0], numbers[1], 1 if vote == "u" else -1)
        case ["s", _]:
            return SourcesPage(numbers[0])
    return None
