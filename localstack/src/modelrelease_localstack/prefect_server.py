"""A real ``prefect server start`` on 127.0.0.1: on PostgreSQL or sqlite, UI on.

Everything Prefect keeps is isolated under ``workdir``: ``PREFECT_HOME`` (``home/``, with its
own empty profiles file, so a user's profile cannot point the server elsewhere) and, unless
a ``database_url`` names a PostgreSQL database (the stack's,
``modelrelease_localstack.postgres``), the sqlite database ``prefect.db``. Telemetry and
analytics are off.

Measured here (2 vCPUs, Prefect 3.9): ready in ~10 s on a fresh database (about 5 s of it
is the Alembic migrations, 1 s block registration), ~4 s on an existing one; ~225 MiB RSS
idle, in one process. Switching off every background service (``--no-services``) saves
about 1.5 s and 5 MiB, so they all stay on: the release flow needs the event persister,
reactive triggers and actions (``DeploymentEventTrigger``), the scheduler (the rollback
drill) and the task-run recorder (the UI). Only analytics/telemetry are switched off, and
the persister/recorder flush every second instead of every five, so events and task runs
show up in the API and UI without a 5 s lag.

Example:
    >>> with LocalPrefect(Path("/tmp/prefect")) as prefect:  # doctest: +SKIP
    ...     os.environ["PREFECT_API_URL"] = prefect.api_url
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Final

from modelrelease.errors import StackError
from modelrelease_localstack.process import Service, free_ports, tail

__all__ = ["SERVER_SETTINGS", "LocalPrefect"]

SERVER_SETTINGS: Final[dict[str, str]] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "true",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "true",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "true",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "1",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "true",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    "DO_NOT_TRACK": "1",
}
"""Settings every local Prefect server gets (besides its paths and URLs)."""


class LocalPrefect:
    """``prefect server start`` with its home and database under ``workdir``.

    :meth:`start` is :meth:`spawn` then :meth:`wait`; a caller with other things to start
    can spawn the server first and wait for it later, since its start is mostly imports and
    migrations.

    Args:
        workdir: Holds ``home/`` (``PREFECT_HOME``), ``prefect.db`` and ``prefect.log``.
        port: The port to listen on (a free one by default).
        detached: Let the server outlive this process (no parent-death signal).
        database_url: The server's database (``postgresql+asyncpg://...``); None: sqlite
            in ``workdir``.
        access_log: Log every API request to ``prefect.log`` (uvicorn's access log, at the
            server's INFO level), e.g. to count a release's Prefect calls
            (benchmarks/jobs.py); off by default, as the log would grow by the poll.
    """

    def __init__(self, workdir: Path, port: int | None = None, *, detached: bool = False,
                 database_url: str | None = None, access_log: bool = False) -> None:
        self.workdir = Path(workdir).absolute()
        self.port = port or free_ports(1)[0]
        self.detached = detached
        self.database_url = database_url
        self.access_log = access_log
        self.service: Service | None = None
        self.start_seconds: float | None = None
        """Seconds from :meth:`spawn` to a healthy ``/api/health`` (last start)."""
        self._spawned_at = 0.0
        self._ready_after: float | None = None

    @property
    def url(self) -> str:
        """The server (and UI) URL, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The API URL clients use as ``PREFECT_API_URL``."""
        return f"{self.url}/api"

    @property
    def database(self) -> Path:
        """The sqlite database file."""
        return self.workdir / "prefect.db"

    @property
    def home(self) -> Path:
        """``PREFECT_HOME`` of the server."""
        return self.workdir / "home"

    @property
    def pid(self) -> int | None:
        """The server's PID while it runs."""
        return self.service.pid if self.service is not None else None

    def environment(self) -> dict[str, str]:
        """The environment the server runs with (paths, URLs and :data:`SERVER_SETTINGS`)."""
        bindir = Path(sys.executable).parent
        db_url = self.database_url or f"sqlite+aiosqlite:///{self.database}"
        return {
            **SERVER_SETTINGS,
            "PREFECT_HOME": str(self.home),
            "PREFECT_PROFILES_PATH": str(self.home / "profiles.toml"),
            "PREFECT_PROFILE": "local",
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": db_url,
            "PREFECT_API_DATABASE_CONNECTION_URL": db_url,  # the legacy name, if inherited
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(self.port),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_UI_API_URL": self.api_url,
            "PREFECT_SERVER_UI_API_URL": self.api_url,
            "PATH": f"{bindir}:{os.environ.get('PATH', '')}",
        } | ({"PREFECT_SERVER_LOGGING_LEVEL": "INFO"} if self.access_log else {})

    def healthy(self) -> bool:
        """Whether ``GET /api/health`` answers ``true``."""
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                return bool(response.status == 200 and json.loads(response.read()) is True)
        except (OSError, ValueError):
            return False

    def spawn(self) -> None:
        """Start the server process without waiting for it.

        Raises:
            StackError: The ``prefect`` executable is missing or cannot be run.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        profiles = self.home / "profiles.toml"
        if not profiles.exists():
            profiles.write_text('active = "local"\n\n[profiles.local]\n')
        prefect = Path(sys.executable).parent / "prefect"
        if not os.access(prefect, os.X_OK):
            raise StackError(f"start prefect: {prefect} not found; install the project "
                             "(`scripts/bootstrap`) into this virtualenv")
        argv = [str(prefect), "server", "start", "--host", "127.0.0.1",
                "--port", str(self.port), "--no-background"]
        self.service = Service("prefect", argv, self.workdir, env=self.environment(),
                               detached=self.detached)
        self._spawned_at = time.monotonic()
        self._ready_after = None
        self.service.start()
        threading.Thread(target=self._watch, args=(self.service,), name="prefect-health",
                         daemon=True).start()

    def _watch(self, service: Service) -> None:
        """Note when the server first answers, while the caller does other things."""
        while self._ready_after is None and service.running():
            if self.healthy():
                self._ready_after = time.monotonic() - self._spawned_at
                return
            time.sleep(0.1)

    def wait(self, timeout: float = 120) -> float:
        """Wait until ``/api/health`` answers; return how long after :meth:`spawn` it did.

        A watcher thread started by :meth:`spawn` notes the moment, so the figure is exact
        even when the caller comes to wait late.

        Raises:
            StackError: The server exited or did not answer in time, with its log's tail.
        """
        if self.service is None:
            raise StackError(f"start prefect {self.url}: not spawned")
        left = max(1.0, timeout - (time.monotonic() - self._spawned_at))
        self.service.wait_ready(self.healthy, left, "answering /api/health")
        self.start_seconds = self._ready_after or time.monotonic() - self._spawned_at
        return self.start_seconds

    def start(self, timeout: float = 120) -> None:
        """Start the server and wait for ``/api/health``.

        Raises:
            StackError: As :meth:`spawn` and :meth:`wait`; the process is stopped again.
        """
        self.spawn()
        try:
            self.wait(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server by its PID (its database stays).

        Raises:
            StackError: The process survived SIGKILL.
        """
        if self.service is not None:
            try:
                self.service.stop()
            except StackError as exc:
                raise StackError(f"stop prefect: {exc} (last lines of {self.service.log}:\n"
                                 f"{tail(self.service.log)})") from exc

    def __enter__(self) -> LocalPrefect:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
