"""Named locks in PostgreSQL: session advisory locks, each on a connection of its own.

A lease's connection is not pooled: the lock lives exactly as long as that session, so a killed
replica's locks go when its connection closes, and TCP keepalives find a vanished machine's
connection dead within about half a minute. The connection's application name carries the
holder's host and process id, so ``holder`` (and an operator reading pg_stat_activity) can tell
who holds what.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from retrieval.config import StorageConfig
from retrieval.errors import StoreError
from retrieval.storage.coordination import lock_key
from retrieval.storage.pg.connect import _first_line, _psycopg

__all__ = ["PgCoordinator", "PgLease"]

# The first key of every newsqa lock (the second is the name's digest); the migrations' lock
# uses the one-bigint form, which PostgreSQL keeps apart from the two-key form.
NAMESPACE = 7_245_102
_HOLDER = "newsqa-lock@"


def _keys(name: str) -> tuple[int, int]:
    return NAMESPACE, int.from_bytes(lock_key(name)[:4], "big") & 0x7FFFFFFF


class PgLease:
    """An advisory lock held by the session of ``con``."""

    def __init__(self, name: str, con: Any) -> None:
        self.name = name
        self._con: Any = con

    def alive(self) -> bool:
        if self._con is None:
            return False
        try:
            row = self._con.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                " AND classid = %s AND objid = %s AND objsubid = 2 AND granted",
                _keys(self.name),
            ).fetchone()
        except Exception:  # the connection broke: the session, and with it the lock, is gone
            return False
        return bool(row and row[0])

    def release(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            try:
                con.execute("SELECT pg_advisory_unlock(%s, %s)", _keys(self.name))
            except Exception:  # noqa: S110 - a dead session has let the lock go already
                pass
            finally:
                con.close()


class PgCoordinator:
    """Advisory locks in the primary database."""

    def __init__(self, config: StorageConfig) -> None:
        self._dsn = config.dsn.reveal().strip()
        self._psycopg = _psycopg()[0]
        self._app_name = f"{_HOLDER}{socket.gethostname()[:30]}:{os.getpid()}"

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(
                self._dsn,
                autocommit=True,
                connect_timeout=5,
                application_name=self._app_name,
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
            )
        except self._psycopg.Error as exc:
            raise StoreError(f"cannot reach the database: {_first_line(exc)}") from None

    def try_lock(self, name: str) -> PgLease | None:
        con = self._connect()
        try:
            row = con.execute("SELECT pg_try_advisory_lock(%s, %s)", _keys(name)).fetchone()
        except self._psycopg.Error as exc:
            con.close()
            raise StoreError(f"cannot reach the database: {_first_line(exc)}") from None
        if not (row and row[0]):
            con.close()
            return None
        return PgLease(name, con)

    def holder(self, name: str) -> int | None:
        con = self._connect()
        try:
            row = con.execute(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s AND l.objsubid = 2"
                " AND l.granted",
                _keys(name),
            ).fetchone()
        except self._psycopg.Error as exc:
            raise StoreError(f"cannot reach the database: {_first_line(exc)}") from None
        finally:
            con.close()
        if row is None:
            return None
        pid = str(row[0]).rpartition(":")[2]
        return int(pid) if pid.isdigit() else None
