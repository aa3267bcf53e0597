"""What each configuration value may be, checked once when the configuration is loaded.

A value that cannot work (``passages.target_words = 0`` stores articles without passages,
``search.fusion = "dense+"`` fails at the first question) is refused at load with one line that
names the key and what it may be. Every key of every section has a rule here; a test checks that
none is missing.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from retrieval.config.parse import parse_every
from retrieval.config.sections import SECTIONS, Config, FeedConfig
from retrieval.errors import ConfigError
from retrieval.storage.registry import BACKENDS

__all__ = [
    "ANY",
    "FUSIONS",
    "RULES",
    "Rule",
    "at_least",
    "check_config",
    "check_section",
    "choice",
    "interval",
    "known_environment",
    "not_empty",
    "warn_unknown_environment",
    "web_url",
]

log = logging.getLogger("retrieval.config")

# The fusions retrieval/search/fusion.py knows (a test checks the two agree; the search package
# imports the configuration, so this module cannot import it).
FUSIONS = ("weighted", "rrf", "dense", "lexical")
# Environment variables read outside the sections' keys.
OTHER_VARIABLES = (
    "NEWSQA_CONFIG",
    "NEWSQA_DATA_DIR",
    "NEWSQA_TELEGRAM_TOKEN",
    "NEWSQA_PG_DSN",
    "NEWSQA_SERVE_SECRET_TOKEN",
    "NEWSQA_HISTORY",
)


@dataclass(frozen=True)
class Rule:
    """A check of one value: returns what the value must be when it is not, else None."""

    check: Callable[[Any], str | None]


def choice(*allowed: str) -> Rule:
    """One of ``allowed``."""
    shown = ", ".join(f'"{a}"' for a in allowed)
    return Rule(lambda v: None if v in allowed else f"must be one of {shown}")


def at_least(low: float, high: float | None = None) -> Rule:
    """A number from ``low`` (to ``high``)."""

    def check(value: Any) -> str | None:
        if value < low or (high is not None and value > high):
            return f"must be from {low:g} to {high:g}" if high is not None else f"must be at least {low:g}"
        return None

    return Rule(check)


def interval() -> Rule:
    """An interval such as "30s", "15m", "1h" (retrieval.schedule.parse_every)."""

    def check(value: Any) -> str | None:
        try:
            parse_every(value)
        except ConfigError:
            return 'must be seconds or a number with s, m, h or d (e.g. "15m"), at least 1 second'
        return None

    return Rule(check)


def web_url(*, empty: bool) -> Rule:
    """An http(s) URL with a host (or empty, when ``empty``)."""

    def check(value: Any) -> str | None:
        if empty and not value:
            return None
        parts = urlsplit(str(value).strip())
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return "must be an http:// or https:// URL" + (" or empty" if empty else "")
        return None

    return Rule(check)


def not_empty() -> Rule:
    """A non-empty string."""
    return Rule(lambda v: None if str(v).strip() else "must not be empty")


ANY = Rule(lambda v: None)

RULES: dict[str, Rule] = {
    "model.name": not_empty(),
    "model.backend": choice("onnx", "torch"),
    "model.cache_dir": ANY,
    "model.quantize": choice("auto", "none", "int8"),
    "model.batch_size": at_least(1, 4096),
    "model.query_threads": at_least(0, 256),
    "model.ingest_threads": at_least(0, 256),
    "passages.target_words": at_least(1, 10_000),
    "passages.max_words": at_least(1, 10_000),
    "passages.overlap_sentences": at_least(0, 20),
    "search.k": at_least(1, 50),
    "search.candidates": at_least(1, 100_000),
    "search.fusion": choice(*FUSIONS),
    "search.dense_weight": at_least(0, 1),
    "search.rrf_k": at_least(1),
    "search.min_score": ANY,  # any threshold is a choice, negative ones answer everything
    "search.coverage_weight": at_least(0),
    "search.names_weight": at_least(0),
    "search.sentence_terms_weight": at_least(0),
    "search.contrast_weight": at_least(0),
    "search.related_cosine": at_least(-1, 1),
    "search.dedupe_threshold": at_least(-1, 1),
    "search.rerank_depth": at_least(0, 1000),
    "search.sentence_weight": at_least(0),
    "search.pair_margin": at_least(0),
    "search.recency_half_life_days": at_least(0),
    "search.recent_weight": at_least(0),
    "search.recent_half_life_days": at_least(0),
    "search.now_weight": at_least(0),
    "search.max_question_chars": at_least(1, 1_000_000),
    "index.approximate_above": at_least(1),
    "index.hnsw_m": at_least(2, 512),
    "index.ef_construction": at_least(1),
    "index.ef_search": at_least(1),
    "index.quantize": choice("sq4", "sq6", "sq8", "none"),
    "index.merge_above": at_least(1),
    "index.max_deleted_share": at_least(0, 1),
    "index.lexical_incremental_above": at_least(0),
    "index.lexical_delta_share": at_least(0, 1),
    "index.threads": at_least(0, 256),
    "index.build_threads": at_least(0, 256),
    "web.timeout": at_least(0.1, 3600),
    "web.max_bytes": at_least(1),
    "web.max_redirects": at_least(0, 100),
    "web.user_agent": not_empty(),
    "web.allow_private_networks": ANY,
    "web.per_host": at_least(1, 100),
    "web.retries": at_least(0, 100),
    "web.backoff": at_least(0),
    # The names the storage factory opens (retrieval/storage/registry.py; a plug-in adds its own).
    "storage.backend": Rule(
        lambda v: None if v in BACKENDS else "must be one of " + ", ".join(f'"{b}"' for b in BACKENDS)
    ),
    "storage.dsn": ANY,
    "storage.replica_dsn": ANY,
    "storage.pool_size": at_least(1, 1000),
    "storage.statement_timeout": at_least(0),
    "feeds.url": web_url(empty=False),
    "feeds.every": interval(),
    "feeds.source": ANY,
    "data_dir": not_empty(),
}


def _fail(where: str, key: str, value: Any, what: str) -> ConfigError:
    return ConfigError(f"{where}: {key} {what}, not {value!r}")


def check_section(where: str, section: str, values: Any, rules: Mapping[str, Rule]) -> None:
    """Raise ConfigError naming the first key of a section (a dataclass) its rule refuses."""
    for f in dataclasses.fields(values):
        key = f"{section}.{f.name}"
        value = getattr(values, f.name)
        if (problem := rules[key].check(value)) is not None:
            raise _fail(where, key, value, problem)


def check_config(config: Config) -> Config:
    """Return ``config`` when every value is usable; else raise ConfigError naming the first bad key."""
    where = config.source or "config"
    if (problem := RULES["data_dir"].check(config.data_dir)) is not None:
        raise _fail(where, "data_dir", config.data_dir, problem)
    for section in SECTIONS:
        check_section(where, section, getattr(config, section), RULES)
    passages = config.passages
    if passages.max_words < passages.target_words:
        raise ConfigError(
            f"{where}: passages.max_words must be at least passages.target_words ({passages.target_words}),"
            f" not {passages.max_words}"
        )
    seen: set[str] = set()
    for number, feed in enumerate(config.feeds, start=1):
        _check_feed(where, number, feed)
        if feed.url in seen:
            raise ConfigError(f"{where}: feed {number} ({feed.url}) is listed twice")
        seen.add(feed.url)
    return config


def _check_feed(where: str, number: int, feed: FeedConfig) -> None:
    for f in dataclasses.fields(feed):
        value = getattr(feed, f.name)
        if (problem := RULES[f"feeds.{f.name}"].check(value)) is not None:
            raise ConfigError(f"{where}: feed {number}: {f.name} {problem}, not {value!r}")


def known_environment(others: Mapping[str, type] | None = None) -> set[str]:
    """Return every NEWSQA_* variable newsqa reads (``others``: a front-end's sections too)."""
    names = set(OTHER_VARIABLES)
    for section, cls in {**SECTIONS, **(others or {})}.items():
        names.update(f"NEWSQA_{section}_{f.name}".upper() for f in dataclasses.fields(cls))
    return names


_warned: set[str] = set()


def warn_unknown_environment(env: Mapping[str, str], others: Mapping[str, type] | None = None) -> list[str]:
    """Log one warning line per NEWSQA_* variable that newsqa does not read; return their names."""
    known = known_environment(others)
    unknown = sorted(name for name in env if name.startswith("NEWSQA_") and name not in known)
    for name in unknown:
        if name in _warned:
            continue
        _warned.add(name)
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        log.warning("ignoring the environment variable %s: newsqa has no such setting%s", name, hint)
    return unknown
