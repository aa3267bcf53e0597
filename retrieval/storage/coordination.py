"""Named locks shared by every process that uses one store: who polls a feed, who polls Telegram.

Each backend hands out its own (``Backend.coordinator``).

Several ``newsqa serve`` replicas on one store take a lock before polling a feed, so each feed
is polled by one of them at a time, and in polling mode to be the one replica that long-polls
Telegram (which allows one). A lock belongs to a live process and goes when it dies, however it
dies: on the local backend it is a file lock in the data directory, dropped by the kernel with
the process; on PostgreSQL it is a session advisory lock on a connection of its own, dropped
when that session ends (a killed process's connection closes; a vanished machine's is found
dead by TCP keepalives).
"""

from __future__ import annotations

import hashlib
from typing import Protocol

__all__ = ["Coordinator", "Lease", "lock_key"]


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
