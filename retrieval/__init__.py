"""newsqa's core: ingest news articles, index them, answer questions with verbatim quotes.

This package never imports a front-end (telegram, click): ``bot`` imports it, not the reverse.
"""

from retrieval.config import Config, Secret, load_config
from retrieval.domain import Answer, Article, Hit, Passage, Quote
from retrieval.errors import (
    ConfigError,
    EmptyIndexError,
    LoaderError,
    ModelMismatchError,
    NewsqaError,
    NotFoundError,
    QuestionError,
    StoreError,
)
from retrieval.ingest.indexing import IngestReport
from retrieval.ingest.loaders import LoadProblem, Overrides, load_file
from retrieval.ingest.splitter import split_article
from retrieval.models.encoder import Encoder
from retrieval.models.loading import load_encoder
from retrieval.newsindex import IndexStats, NewsIndex
from retrieval.serialize import answer_to_dict, article_to_dict
from retrieval.service import NewsService
from retrieval.storage.base import CheckReport, SourceInfo, UsageStats

__all__ = [
    "Answer",
    "Article",
    "CheckReport",
    "Config",
    "ConfigError",
    "EmptyIndexError",
    "Encoder",
    "Hit",
    "IndexStats",
    "IngestReport",
    "LoadProblem",
    "LoaderError",
    "ModelMismatchError",
    "NewsIndex",
    "NewsService",
    "NewsqaError",
    "NotFoundError",
    "Overrides",
    "Passage",
    "QuestionError",
    "Quote",
    "Secret",
    "SourceInfo",
    "StoreError",
    "UsageStats",
    "answer_to_dict",
    "article_to_dict",
    "load_config",
    "load_encoder",
    "load_file",
    "split_article",
]
