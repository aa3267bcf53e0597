"""Named locks of the local backend: lock files under ``<data dir>/.locks``, dropped by the kernel
with the process that held them."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from retrieval.storage.coordination import lock_key

__all__ = ["FileCoordinator", "FileLease"]


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
