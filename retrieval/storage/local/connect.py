"""Connections to the local store's SQLite file: WAL mode for writers and readers, or immutable
reading when the data directory cannot be written."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

from retrieval.errors import StoreError

__all__ = ["BUSY_TIMEOUT_S", "connect", "connect_read_only"]

# How long a connection waits for another one's lock before giving up.
BUSY_TIMEOUT_S = 30.0


def _set_wal(con: sqlite3.Connection) -> None:
    """Put the database in WAL mode, waiting (up to BUSY_TIMEOUT_S) for others setting it up.

    SQLite does not call the busy handler for this switch: on a new file that another process is
    creating at the same moment (two replicas started at once) it fails at once with "database is
    locked" (27 times in 200 races of two threads here), so it is retried here.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            con.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def connect(path: Path) -> sqlite3.Connection:
    """Open the database for reading and writing, in WAL mode."""
    try:
        con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        con.row_factory = sqlite3.Row
        _set_wal(con)
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("PRAGMA foreign_keys=ON")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a usable newsqa database: {exc}") from None
    return con


def connect_read_only(path: Path) -> sqlite3.Connection:
    """Open a database in a directory that cannot be written: immutable, no lock files."""
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        # Immutable reading would miss what the log holds; read-only WAL reading needs to write.
        raise StoreError(
            f"{path.parent} is not writable, and {wal.name} holds writes not yet in the database; "
            "open it once where it can be written (or copy the directory) to read it"
        )
    uri = f"file:{quote(str(path.resolve()))}?immutable=1"
    try:
        con = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        con.row_factory = sqlite3.Row
        con.execute("SELECT 1 FROM meta LIMIT 1")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a usable newsqa database: {exc}") from None
    return con
