"""Measure answers against questions with known answers: recall, MRR, marking, abstention, latency.

A question file is JSON lines ``{"id", "question", "answers": [...], "article_urls": [...]}``. A
returned passage is a hit when it contains one of the answers, compared case- and
whitespace-insensitively, with typographic quotes and apostrophes taken as the plain ones (an
answer written “Succession” is found in a passage that writes "Succession").
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval.errors import LoaderError, QuestionError
from retrieval.newsindex import NewsIndex

__all__ = ["EvalQuestion", "MethodResult", "evaluate", "read_questions"]

_SPACE = re.compile(r"\s+")
_QUOTES = str.maketrans({**dict.fromkeys("“”„‟″«»", '"'), **dict.fromkeys("‘’‚‛′", "'")})


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text.translate(_QUOTES)).strip().casefold()


@dataclass(frozen=True)
class EvalQuestion:
    """A question and the strings that answer it."""

    id: str
    question: str
    answers: tuple[str, ...]


def read_questions(path: Path, limit: int | None = None) -> list[EvalQuestion]:
    """Read a questions file; malformed lines are an error naming the line."""
    out: list[EvalQuestion] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise LoaderError(f"{path}: cannot read ({exc.strerror})") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out.append(
                EvalQuestion(str(row.get("id", n)), str(row["question"]), tuple(str(a) for a in row.get("answers", [])))
            )
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise LoaderError(f'{path}:{n}: not a question line (needs "question" and "answers")') from None
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise LoaderError(f"{path}: no questions")
    return out


@dataclass
class MethodResult:
    """The figures of one retrieval method over a question set."""

    method: str
    questions: int = 0
    recall: dict[int, float] = field(default_factory=dict)
    mrr10: float = 0.0
    marked: float | None = None
    abstained: float | None = None
    answered_when_found: float | None = None
    latency_ms_p50: float = 0.0
    latency_ms_p95: float = 0.0
    details: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the figures (without per-question details) as JSON-ready data."""
        return {
            "method": self.method,
            "questions": self.questions,
            **{f"recall@{k}": round(v, 4) for k, v in self.recall.items()},
            "mrr@10": round(self.mrr10, 4),
            "marked": None if self.marked is None else round(self.marked, 4),
            "abstained": None if self.abstained is None else round(self.abstained, 4),
            "answered_when_found": None if self.answered_when_found is None else round(self.answered_when_found, 4),
            "latency_ms_p50": round(self.latency_ms_p50, 1),
            "latency_ms_p95": round(self.latency_ms_p95, 1),
        }


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def evaluate(
    index: NewsIndex,
    questions: Sequence[EvalQuestion],
    method: str | None = None,
    full: bool = True,
    progress: Callable[[int], None] | None = None,
) -> MethodResult:
    """Run every question through ``method`` (the configured fusion when None) and score it.

    With ``full`` each question is also answered the way users see it (``ask``): that gives the
    marked-sentence rate, abstention and the latency of the whole pipeline.
    """
    name = method or index.config.search.fusion
    result = MethodResult(method=name if method else f"{name} (shipped)")
    ranks: list[int | None] = []
    marked = abstained = found_answered = found = 0
    latencies: list[float] = []
    for q in questions:
        gold = [_norm(a) for a in q.answers if a.strip()]
        try:
            query = index.parse(q.question)
        except QuestionError:
            ranks.append(None)
            continue
        started = time.perf_counter()
        hits = index.rank(q.question, 10) if method is None else index.hits_for(query, 10, method)
        search_ms = (time.perf_counter() - started) * 1000
        rank = next((i for i, s in enumerate(hits, start=1) if any(g in _norm(s.hit.passage.text) for g in gold)), None)
        ranks.append(rank)
        # What abstention weighs (from the hits the answer is made from): per top passage its
        # cosine, its coverage of the question's terms, of its names and (by its best sentence)
        # of its terms again; and how far the best passage stands out from the collection.
        parts, contrast = index.confidence_inputs(q.question, fusion=method)
        detail: dict[str, Any] = {
            "id": q.id,
            "rank": rank,
            "dense": max([0.0, *(p[0] for p in parts)]),
            "coverage": max((p[1] for p in parts), default=0.0),
            "confidence_parts": [list(p) for p in parts],
            "contrast": contrast,
        }
        if full:
            started = time.perf_counter()
            answer = index.ask(q.question, fusion=method)
            latencies.append((time.perf_counter() - started) * 1000)
            detail["answered"] = answer.answered
            if not answer.answered:
                abstained += 1
            if rank is not None and rank <= 5:
                found += 1
                found_answered += answer.answered
            if answer.quotes and any(g in _norm(answer.quotes[0].marked) for g in gold):
                marked += 1
                detail["marked"] = True
        else:
            latencies.append(search_ms)
        result.details.append(detail)
        if progress is not None:
            progress(1)
    n = len(ranks)
    result.questions = n
    result.recall = {k: sum(1 for r in ranks if r is not None and r <= k) / n for k in (1, 5, 10)}
    result.mrr10 = sum(1 / r for r in ranks if r is not None) / n
    if full:
        result.marked = marked / n
        result.abstained = abstained / n
        result.answered_when_found = found_answered / found if found else None
    result.latency_ms_p50 = statistics.median(latencies) if latencies else 0.0
    result.latency_ms_p95 = _percentile(latencies, 0.95)
    return result
