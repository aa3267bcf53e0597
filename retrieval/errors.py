"""Errors raised by the core.

The tree::

    NewsqaError                 anything the core reports to a front-end
    ├── ConfigError             a bad config file, key or value
    ├── LoaderError             a source that cannot be read as an article
    ├── QuestionError           an empty, oversized or otherwise unusable question
    ├── NotFoundError           an article id or URL that is not in the store
    └── StoreError              the data directory is missing, corrupt or locked
        ├── EmptyIndexError     nothing has been ingested yet
        └── ModelMismatchError  the index was built with another encoder

Front-ends translate these once: the CLI prints the message on one line and exits 1,
the bot replies kindly and logs the traceback. Messages say what to do next.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "EmptyIndexError",
    "LoaderError",
    "ModelMismatchError",
    "NewsqaError",
    "NotFoundError",
    "QuestionError",
    "StoreError",
]


class NewsqaError(Exception):
    """Base class of every error the core raises on purpose."""


class ConfigError(NewsqaError):
    """The configuration cannot be used."""


class LoaderError(NewsqaError):
    """A source cannot be turned into articles."""


class QuestionError(NewsqaError):
    """A question cannot be answered as asked."""


class NotFoundError(NewsqaError):
    """An article that was asked for is not stored."""


class StoreError(NewsqaError):
    """The data directory cannot be used."""


class EmptyIndexError(StoreError):
    """No articles have been ingested."""


class ModelMismatchError(StoreError):
    """The stored vectors come from a different encoder than the configured one."""
