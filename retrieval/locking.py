"""One writer at a time per data directory, across processes."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from retrieval.errors import StoreError

__all__ = ["writer_active", "writer_lock"]


def writer_active(folder: Path) -> bool:
    """Return True while some process holds the data directory's writer lock."""
    path = folder / ".writer.lock"
    if not path.exists():
        return False
    try:
        fd = os.open(path, os.O_RDONLY)  # flock needs no write access: a read-only directory works
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@contextmanager
def writer_lock(folder: Path, wait: float = 600.0) -> Iterator[None]:
    """Hold the data directory's writer lock; wait up to ``wait`` seconds for another writer."""
    path = folder / ".writer.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(
            f"cannot write to {folder} ({exc.strerror}): "
            "newsqa can answer from a read-only directory but not write to it"
        ) from None
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"another newsqa process is writing to {folder}; try again when it is done"
                    ) from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
