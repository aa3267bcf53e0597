"""The inline keyboards under answers and source lists."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.telegram.callbacks import Feedback, More, SourcesPage, decode, encode

__all__ = ["DOWN", "UP", "answer_keyboard", "next_offset_of", "sources_keyboard"]

UP, DOWN, CHOSEN = "👍", "👎", " ✓"
MORE, NEWER, OLDER = "More ›", "‹ Newer", "Older ›"


def answer_keyboard(question_id: int, offset: int, *, next_offset: int | None, vote: int = 0) -> InlineKeyboardMarkup:
    """Return 👍/👎 for the quotes shown from ``offset``, and More when there may be more."""
    row = [
        InlineKeyboardButton(
            UP + (CHOSEN if vote > 0 else ""),
            callback_data=encode(Feedback(question_id, offset, 1)),
        ),
        InlineKeyboardButton(
            DOWN + (CHOSEN if vote < 0 else ""),
            callback_data=encode(Feedback(question_id, offset, -1)),
        ),
    ]
    if next_offset is not None:
        row.append(InlineKeyboardButton(MORE, callback_data=encode(More(question_id, next_offset))))
    return InlineKeyboardMarkup([row])


def next_offset_of(markup: InlineKeyboardMarkup | None) -> int | None:
    """Return the offset the More button of a keyboard asks for, None if it has none."""
    if markup is None:
        return None
    for row in markup.inline_keyboard:
        for button in row:
            data = decode(button.callback_data if isinstance(button.callback_data, str) else None)
            if isinstance(data, More):
                return data.offset
    return None


def sources_keyboard(offset: int, page: int, *, has_older: bool) -> InlineKeyboardMarkup | None:
    """Return the paging buttons of a /sources page, None when everything fits on one page."""
    row = []
    if offset > 0:
        row.append(InlineKeyboardButton(NEWER, callback_data=encode(SourcesPage(max(0, offset - page)))))
    if has_older:
        row.append(InlineKeyboardButton(OLDER, callback_data=encode(SourcesPage(offset + page))))
    return InlineKeyboardMarkup([row]) if row else None
