"""Named locks shared by every process that uses one store: who polls a feed, who polls Telegram.

Several ``newsqa serve`` replicas on one store take a lock before polling a feed, so each feed
is polled by one of them at a time, and in polling mode to be the one replica that long-polls
Telegram (which allows one). A lock belongs to a live process and goes when it dies, however it
dies: on the local backend it is a file lock in the data directory, dropped by the kernel with
the process; on PostgreSQL it is a session advisory lock on a connection of its own, dropped
when that session ends (a killed process's connection closes; a vanished machine's is found
dead by TCP keepalives).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from retrieval.config import Config

__all__ = ["Coordinator", "FileCoordinator", "Lease", "coordinator_for", "lock_key"]


def lock_key(name: str) -> bytes:
    """Return a stable digest of a lock name (names may hold URLs or secrets' hashes)."""
    return hashlib.sha256(name.encode("utf-8")).digest()


class Lease(Protocol):
    """A held lock."""

    name: str

    def alive(self) -> bool:
        """Return True while the lock is certainly still held by this process."""
        ...

    def release(self) -> None:
        """Let the lock go (safe to call twice)."""
        ...


class Coordinator(Protocol):
    """Hands out named locks shared with every other process on the same store."""

    def try_lock(self, name: str) -> Lease | None:
        """Take the lock ``name`` if nobody holds it; None if another process does.

        Raises StoreError when that cannot be known (the database is unreachable).
        """
        ...

    def holder(self, name: str) -> int | None:
        """Return the process id of the lock's holder (on its own machine), None if free."""
        ...


class FileLease:
    """A lock file held with flock; its content is the holder's process id."""

    def __init__(self, name: str, fd: int) -> None:
        self.name = name
        self._fd: int | None = fd

    def alive(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


class FileCoordinator:
    """Locks as files under ``<data dir>/.locks``: processes on one machine share them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / ".locks"

    def _path(self, name: str) -> Path:
        return self.folder / f"{lock_key(name).hex()[:32]}.lock"

    def try_lock(self, name: str) -> FileLease | None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(name), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return FileLease(name, fd)

    def holder(self, name: str) -> int | None:
        path = self._path(name)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.pread(fd, 32, 0).decode(errors="replace").strip()
                return int(text) if text.isdigit() else None
            return None  # nobody holds it (the shared lock we took goes with the descriptor)
        finally:
            os.close(fd)


def coordinator_for(config: Config) -> Coordinator:
    """Return the coordinator of the configured store."""
    if config.storage.backend == "postgres":
        from retrieval.storage.pg.locks import PgCoordinator

        return PgCoordinator(config.storage)
    return FileCoordinator(config.data_path)
