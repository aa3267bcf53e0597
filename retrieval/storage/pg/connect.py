"""Connection pools to the primary database and, when configured, a read-only replica."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from retrieval.config import StorageConfig
from retrieval.errors import ConfigError, StoreError

__all__ = ["Database", "database_error"]

log = logging.getLogger(__name__)


def _psycopg() -> Any:
    try:
        import psycopg
        import psycopg_pool
    except ImportError:
        raise ConfigError(
            "the postgres backend needs psycopg: pip install 'newsqa[postgres]' (or set [storage] backend = \"local\")"
        ) from None
    return psycopg, psycopg_pool


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def database_error(exc: Exception) -> StoreError:
    """Return the one-line StoreError a front-end shows for a database failure."""
    return StoreError(f"database error: {_first_line(exc)}")


class Database:
    """Pooled connections; every connection runs in UTC with the configured statement timeout.

    A pool checks a connection before lending it, so connections broken by a database restart
    are replaced instead of failing the next question.
    """

    def __init__(self, config: StorageConfig) -> None:
        dsn = config.dsn.reveal().strip()
        if not dsn:
            raise ConfigError('[storage] backend = "postgres" needs a database: set $NEWSQA_PG_DSN or storage.dsn')
        self.psycopg, pool_module = _psycopg()
        self.dict_row = self.psycopg.rows.dict_row
        self._timeout_ms = int(config.statement_timeout * 1000)
        size = max(2, config.pool_size)  # a writer holds its lock on one connection and writes on another
        self._lock = threading.Lock()
        self._pools: list[Any] = []
        self._primary = self._pool(pool_module, dsn, size, "newsqa-primary")
        replica = config.replica_dsn.reveal().strip()
        self._replica = self._pool(pool_module, replica, size, "newsqa-replica") if replica else self._primary

    def _pool(self, pool_module: Any, dsn: str, size: int, name: str) -> Any:
        pool = pool_module.ConnectionPool(
            dsn,
            min_size=1,
            max_size=size,
            open=False,
            name=name,
            configure=self._configure,
            check=pool_module.ConnectionPool.check_connection,
            timeout=5.0,  # waiting for a free (or reconnected) connection: then "try again"
            reconnect_timeout=60.0,
        )
        self._pools.append(pool)
        return pool

    def _configure(self, con: Any) -> None:
        con.autocommit = True
        con.execute(f"SET statement_timeout = {self._timeout_ms}")
        con.execute("SET TimeZone = 'UTC'")
        # Searches read deeper than pgvector's default of 40 candidates; filters may drop some,
        # so scan on until enough pass (pgvector 0.8 iterative scans).
        con.execute("SET hnsw.ef_search = 200")
        con.execute("SET hnsw.iterative_scan = strict_order")

    def _open(self, pool: Any) -> Any:
        with self._lock:
            if pool.closed:
                # One plain connection first: a wrong DSN or a server that is down fails at once
                # with libpq's own message, rather than after the pool's wait.
                try:
                    self.psycopg.connect(pool.conninfo, connect_timeout=5).close()
                except self.psycopg.Error as exc:
                    raise StoreError(f"cannot connect to the database: {_first_line(exc)}") from None
                pool.open(wait=False)
        return pool

    @contextmanager
    def connection(self, *, read_only: bool = False) -> Iterator[Any]:
        """Lend a connection (autocommit) from the replica pool when ``read_only``, else the primary."""
        pool = self._open(self._replica if read_only else self._primary)
        try:
            with pool.connection() as con:
                yield con
        except self.psycopg.Error as exc:
            raise database_error(exc) from exc
        except StoreError:
            raise
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg_pool"):
                raise StoreError(f"cannot reach the database: {exc}") from exc
            raise

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """Lend a primary connection inside one transaction, committed when the block ends."""
        with self.connection() as con, con.transaction():
            yield con

    def close(self) -> None:
        """Close every pool."""
        for pool in self._pools:
            pool.close()
