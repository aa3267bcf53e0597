"""The ``ask`` command: one question, or one per line from stdin, as text or JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable

import click

from bot.terminal import format_answer
from retrieval.domain import Answer
from retrieval.errors import QuestionError
from retrieval.serialize import answer_to_dict
from retrieval.service import NewsService

__all__ = ["ask_many", "ask_one"]


def _print(answer: Answer, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(answer_to_dict(answer), ensure_ascii=False))
    else:
        click.echo(format_answer(answer, color=sys.stdout.isatty()))


def ask_one(service: NewsService, question: str, k: int | None, as_json: bool) -> None:
    """Answer one question; a bad question is an error (exit 1)."""
    _print(service.ask(question, k=k), as_json)


EMPTY = "empty question"


def ask_many(service: NewsService, lines: Iterable[str], k: int | None, as_json: bool) -> None:
    """Answer one question per line; a bad line is reported in its place and the rest go on.

    As JSON, output line N answers input line N: a blank line gets an unanswered object too.
    """
    for line in lines:
        question = line.rstrip("\r\n")
        if not question.strip():
            if as_json:
                _print(Answer("", (), False, EMPTY), as_json)
            continue
        try:
            answer = service.ask(question, k=k)
        except QuestionError as exc:
            answer = Answer(question, (), False, str(exc))
            if not as_json:
                click.echo(f"newsqa: {exc}", err=True)
                continue
        _print(answer, as_json)
        if not as_json:
            click.echo("")
