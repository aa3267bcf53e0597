"""PostgreSQL literals of newsqa's values: vectors for pgvector, terms for ``tsvector``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["quote_term", "terms_literal", "vector_literal"]


def vector_literal(vector: np.ndarray) -> str:
    """Return pgvector's text form of a float32 vector (exact: floats print as their shortest repr)."""
    return "[" + ",".join(map(str, np.asarray(vector, dtype=np.float32).tolist())) + "]"


def quote_term(term: str) -> str:
    """Return a term quoted as a ``tsvector``/``tsquery`` lexeme (taken as is, no parsing)."""
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def terms_literal(tokens: Sequence[str]) -> str:
    """Return a ``tsvector`` literal of these tokens, each with its positions (so tf = #positions)."""
    positions: dict[str, list[int]] = {}
    for i, token in enumerate(tokens, start=1):
        positions.setdefault(token, []).append(min(i, 16383))
    return " ".join(f"{quote_term(t)}:{','.join(map(str, p[:256]))}" for t, p in positions.items())
