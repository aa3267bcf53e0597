"""The reading model's seam: a trained cross-encoder that scores how well a sentence answers a question.

Only the protocol lives here; a reader is loaded by the code that trains and ships it. In the
answering pipeline it is one stage (see docs/architecture.md, "Adding a stage"): it scores the
sentences of the candidate groups, sets each group's ``sentence_scores`` and ``score`` and the
state's ``answerability``, and the marking and abstention stages read those.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

__all__ = ["Reader"]


class Reader(Protocol):
    """Scores (title, sentence) pairs against a question."""

    def score(self, question: str, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Return one float32 score per ``(title, sentence)`` pair, higher when it answers ``question``.

        Returns:
            An array of shape ``(len(pairs),)``, dtype float32.
        """
        ...
