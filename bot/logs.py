"""Logging for the entry points: configured once, with the token-leaking loggers quietened.

Every entry point (the CLI's commands, ``newsqa bot``, ``newsqa serve``) calls ``setup_logging``
once; libraries only ever call ``logging.getLogger(__name__)``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

__all__ = ["JsonFormatter", "setup_logging"]

# httpx at INFO writes request URLs, and the Bot API's carry the token; the others are chatty.
QUIET = (
    "httpx",
    "httpcore",
    "sentence_transformers",
    "transformers",
    "faiss",
    "bm25s",
    "apscheduler",
    "tornado.access",
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def setup_logging(level: str = "WARNING", *, json_lines: bool | None = False) -> None:
    """Log to stderr at ``level``: JSON lines when ``json_lines`` (None: unless stderr is a terminal).

    httpx and the other chatty libraries stay at WARNING or above.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    if json_lines if json_lines is not None else not sys.stderr.isatty():
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for noisy in QUIET:
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
