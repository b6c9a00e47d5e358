"""Debian's PostgreSQL on 127.0.0.1: the database of the stack's Prefect server and MLflow.

Production installs run Prefect's server and MLflow's tracking server on PostgreSQL;
SQLite serialises every write and answers a busy Prefect server with ``database is
locked`` and 503s. ``LocalPostgres`` runs the ``postgres`` server of Debian's packages
(``apt-get install postgresql``) with its cluster under ``workdir/data`` (``initdb`` on
first start, kept across restarts), TCP on 127.0.0.1 only (no Unix socket), ``trust``
authentication (nothing but this host can reach it), and ``fsync`` off: the stack's data
is disposable, so a crash of the machine may lose it, never a test's speed.

PostgreSQL refuses to run as root. Run as root, it is started in a user namespace that
maps root to an unprivileged user id (``unshare --map-user``): the server is not root
inside it, and the files it creates are root's outside it, so ``dev down`` and a deleted
work directory leave nothing owned by another user behind.

Example:
    >>> with LocalPostgres(Path("/tmp/pg"), databases=("prefect",)) as pg:  # doctest: +SKIP
    ...     pg.url("prefect")
    'postgresql://postgres@127.0.0.1:54329/prefect'
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from modelrelease.errors import StackError
from modelrelease_localstack.process import Service, free_ports, pid_alive

__all__ = ["LocalPostgres", "postgres_bindir"]

INSTALL = "apt-get install postgresql (or run scripts/bootstrap)"
USER = "postgres"
UNPRIVILEGED_ID = "1000"
"""The user id root becomes inside the server's user namespace."""


def postgres_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/N/bin`` holding ``postgres`` and ``initdb``.

    Raises:
        StackError: PostgreSQL is not installed, with the command that installs it.
    """
    base = Path("/usr/lib/postgresql")
    found = sorted((p / "bin" for p in base.glob("*") if (p / "bin" / "postgres").is_file()
                    and (p / "bin" / "initdb").is_file()),
                   key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if not found:
        raise StackError(f"start postgres: no PostgreSQL server in {base}; {INSTALL}")
    return found[-1]


class LocalPostgres:
    """A PostgreSQL cluster under ``workdir`` serving ``databases`` on 127.0.0.1.

    Args:
        workdir: Holds ``data/`` (the cluster) and ``postgres.log``.
        port: The port to listen on (a free one by default).
        databases: Created on start when missing.
        detached: Let the server outlive this process (no parent-death signal).
    """

    def __init__(self, workdir: Path, port: int | None = None, *,
                 databases: Sequence[str] = (), detached: bool = False) -> None:
        self.workdir = Path(workdir).absolute()
        self.port = port or free_ports(1)[0]
        self.databases = tuple(databases)
        self.detached = detached
        self.service: Service | None = None
        self._bindir: Path | None = None

    @property
    def bindir(self) -> Path:
        """Where PostgreSQL's programs are (looked up once).

        Raises:
            StackError: PostgreSQL is not installed, with the command that installs it.
        """
        if self._bindir is None:
            self._bindir = postgres_bindir()
        return self._bindir

    @property
    def data(self) -> Path:
        """The cluster's data directory."""
        return self.workdir / "data"

    def url(self, database: str, driver: str = "") -> str:
        """``postgresql[+driver]://postgres@127.0.0.1:PORT/database``."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{USER}@127.0.0.1:{self.port}/{database}"

    def _as_server_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        unshare = shutil.which("unshare")
        if unshare is None:
            raise StackError("start postgres: running as root needs util-linux's unshare "
                             "(apt-get install util-linux)")
        return [unshare, "--user", f"--map-user={UNPRIVILEGED_ID}",
                f"--map-group={UNPRIVILEGED_ID}", *argv]

    def _run(self, argv: list[str], what: str) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise StackError(f"start postgres: {what} failed ({done.returncode}): "
                             f"{(done.stderr or done.stdout).strip()[-800:]}")
        return done.stdout

    def _ready(self) -> bool:
        return subprocess.run(
            [str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", USER, "-d", "postgres"], timeout=10, check=False).returncode == 0

    def start(self, timeout: float = 60) -> None:
        """Create the cluster if there is none, start the server, create the databases.

        Raises:
            StackError: PostgreSQL is missing, or the server did not start (with its log).
        """
        bindir = self.bindir
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not (self.data / "PG_VERSION").is_file():
            self._run(self._as_server_user([
                str(bindir / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust",
                "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]), "initdb")
        self.service = Service("postgres", self._as_server_user([
            str(bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
            "-h", "127.0.0.1", "-c", "unix_socket_directories=", "-c", "fsync=off",
            "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=200"]), self.workdir, detached=self.detached)
        self.service.start()
        self.service.wait_ready(self._ready, timeout, "accepting connections")
        for database in self.databases:
            self.create(database)

    def create(self, database: str) -> None:
        """Create ``database`` unless it exists."""
        psql = [str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                "-U", USER, "-d", "postgres", "-tAc"]
        quoted = database.replace("'", "''")
        if not self._run([*psql, f"SELECT 1 FROM pg_database WHERE datname = '{quoted}'"],
                         f"look up database {database}").strip():
            name = database.replace('"', '""')
            self._run([*psql, f'CREATE DATABASE "{name}"'], f"create database {database}")

    def stop(self) -> None:
        """Stop the server with a fast shutdown (clients are cut off); the data stays."""
        if self.service is None:
            return
        pid = self.service.pid
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown
        self.service.stop()

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
