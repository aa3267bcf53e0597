"""One writer at a time per data directory, across processes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from retrieval.errors import StoreError

__all__ = ["writer_active", "writer_lock", "writer_pid"]


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


def writer_pid(folder: Path) -> int | None:
    """Return the pid the current (or last) writer wrote into the lock file, if any."""
    try:
        text = (folder / ".writer.lock").read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


@contextmanager
def writer_lock(
    folder: Path, wait: float = 600.0, on_wait: Callable[[int | None], None] | None = None
) -> Iterator[None]:
    """Hold the data directory's writer lock; wait up to ``wait`` seconds for another writer.

    ``on_wait`` is called once, with the holder's pid when known, if the lock is taken.
    """
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
                if on_wait is not None:
                    on_wait(writer_pid(folder))
                    on_wait = None
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"another newsqa process is writing to {folder}; try again when it is done"
                    ) from None
                time.sleep(0.2)
        # Who holds it, for a writer that has to wait (the file is never read for anything else).
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
