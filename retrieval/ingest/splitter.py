"""Split an article into passages: whole sentences, about a target length, with a small overlap."""

from __future__ import annotations

import re
from dataclasses import dataclass

from retrieval.config import PassageConfig
from retrieval.ingest.sentences import split_sentences

__all__ = ["Span", "split_article", "split_text"]

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Span:
    """A passage before it is stored: offsets into the article text."""

    ordinal: int
    start: int
    end: int


def split_text(text: str, config: PassageConfig | None = None) -> list[Span]:
    """Return passage spans covering every sentence of ``text``.

    Sentences are never cut, except one longer than ``max_words`` on its own, which is cut at
    word boundaries. Consecutive passages share ``overlap_sentences`` sentences so that an answer
    straddling a boundary is whole in one of them.
    """
    cfg = config or PassageConfig()
    sentences = _bounded_sentences(text, cfg.max_words)
    if not sentences:
        return []
    words = [len(_WORD.findall(text, s, e)) for s, e in sentences]
    spans: list[Span] = []
    i = 0
    n = len(sentences)
    while i < n:
        j = i
        count = 0
        while j < n and (j == i or count + words[j] <= cfg.max_words):
            count += words[j]
            j += 1
            if count >= cfg.target_words:
                break
        # Do not leave a tiny tail: fold it into this passage when it fits.
        tail = sum(words[j:])
        if j < n and tail < cfg.target_words // 3 and count + tail <= cfg.max_words:
            j = n
        spans.append(Span(len(spans), sentences[i][0], sentences[j - 1][1]))
        if j >= n:
            break
        back = min(cfg.overlap_sentences, j - i - 1)
        i = j - back if back > 0 else j
    return spans


def split_article(text: str, config: PassageConfig | None = None) -> list[Span]:
    """Return the passage spans of an article's text (see :func:`split_text`)."""
    return split_text(text, config)


def _bounded_sentences(text: str, max_words: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in split_sentences(text):
        tokens = list(_WORD.finditer(text, s, e))
        if len(tokens) <= max_words:
            out.append((s, e))
            continue
        for k in range(0, len(tokens), max_words):
            chunk = tokens[k : k + max_words]
            out.append((chunk[0].start(), chunk[-1].end()))
    return out
