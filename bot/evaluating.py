"""The ``eval`` command: print the figures of the shipped method, and of the baselines with --compare."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from retrieval.evaluation import MethodResult, read_questions
from retrieval.service import NewsService

__all__ = ["run_eval"]


def _table(results: list[MethodResult], off_topic: bool) -> str:
    if off_topic:
        rows = [f"{'method':<22} {'questions':>9} {'refused':>8} {'p50 ms':>7} {'p95 ms':>7}"]
        for r in results:
            rows.append(
                f"{r.method:<22} {r.questions:>9} {r.abstained or 0:>8.3f} {r.latency_ms_p50:>7.1f} {r.latency_ms_p95:>7.1f}"
            )
        return "\n".join(rows)
    head = f"{'method':<22} {'n':>5} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7} {'marked':>7} {'refused':>8} {'kept@5':>7} {'p50 ms':>7} {'p95 ms':>7}"
    rows = [head]
    for r in results:

        def opt(v: float | None) -> str:
            return "-" if v is None else f"{v:.3f}"

        rows.append(
            f"{r.method:<22} {r.questions:>5} {r.recall[1]:>6.3f} {r.recall[5]:>6.3f} {r.recall[10]:>6.3f} {r.mrr10:>7.3f} "
            f"{opt(r.marked):>7} {opt(r.abstained):>8} {opt(r.answered_when_found):>7} {r.latency_ms_p50:>7.1f} {r.latency_ms_p95:>7.1f}"
        )
    return "\n".join(rows)


def run_eval(
    service: NewsService,
    path: Path,
    *,
    as_json: bool,
    compare: bool,
    off_topic: bool,
    limit: int | None,
    details: str | None,
) -> None:
    """Evaluate and print."""
    questions = read_questions(path, limit)
    bar = None
    total = len(questions) * (3 if compare else 1)
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, unit=" questions", file=sys.stderr, leave=False)
    progress = bar.update if bar is not None else None
    results = []
    if compare:
        for method in ("dense", "lexical"):
            results.append(service.evaluate(questions, method, full=False, progress=progress))
    results.append(service.evaluate(questions, None, full=True, progress=progress))
    if bar is not None:
        bar.close()
    if details:
        with open(details, "w", encoding="utf-8") as fh:
            for r in results:
                for d in r.details:
                    fh.write(json.dumps({"method": r.method, **d}) + "\n")
    if as_json:
        click.echo(json.dumps({"questions_file": str(path), "results": [r.as_dict() for r in results]}))
    else:
        click.echo(_table(results, off_topic))
