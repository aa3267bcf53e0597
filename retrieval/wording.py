"""Counts in words: "1 passage", "2 passages", "1 copy", "3 copies"."""

from __future__ import annotations

__all__ = ["plural"]

_IRREGULAR = {"copy": "copies", "entry": "entries", "was": "were", "this": "these"}


def plural(count: int, singular: str, plural_form: str | None = None, *, grouped: bool = False) -> str:
    """Return ``count`` and the noun in the form the count takes ("1 quote", "0 quotes", "2 copies").

    ``grouped`` writes thousands with commas ("1,400 passages").
    """
    word = singular if count == 1 else plural_form or _IRREGULAR.get(singular) or singular + "s"
    number = f"{count:,}" if grouped else str(count)
    return f"{number} {word}"
