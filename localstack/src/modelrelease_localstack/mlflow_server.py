"""A real ``mlflow server`` on 127.0.0.1: PostgreSQL or sqlite backend, local artifacts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from modelrelease_localstack.process import Service, answers_ok, free_ports

WEBHOOK_KEY = "x5RBW6e3Ab8t4hVf2ESkdqGxhm_Ik3TYgb_KFkz5D5A="  # fixed Fernet key: local only


class LocalMlflow:
    """``mlflow server`` with its artifacts under ``workdir``.

    Its store is sqlite in ``workdir`` too, unless ``backend_uri`` names another (the
    stack's PostgreSQL).

    ``--workers 1`` and ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` keep it at about
    6 s to ready and 480 MB (measured, DESIGN.md).
    """

    def __init__(self, workdir: Path, port: int | None = None, *, detached: bool = False,
                 backend_uri: str | None = None) -> None:
        self.workdir = workdir
        self.backend_uri = backend_uri or f"sqlite:///{workdir / 'mlflow.db'}"
        """The backend store (``postgresql://...``; default: sqlite in ``workdir``)."""
        self.detached = detached
        self.port = port or free_ports(1)[0]
        self.service: Service | None = None

    @property
    def url(self) -> str:
        """The tracking URI."""
        return f"http://127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        return answers_ok(f"{self.url}/health")

    def start(self, timeout: float = 90) -> None:
        """Start the server and wait for ``/health``."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        bindir = Path(sys.executable).parent
        argv = [
            str(bindir / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--backend-store-uri",
            self.backend_uri,
            "--artifacts-destination",
            str(self.workdir / "artifacts"),
        ]
        env = {
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
            "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": WEBHOOK_KEY,
            # MLflow caches each event's webhook list (60 s by default) and does not clear
            # it when a webhook is created: a just-registered webhook would miss deliveries.
            "MLFLOW_WEBHOOK_CACHE_TTL": "1",
            "PATH": f"{bindir}:{os.environ.get('PATH', '')}",
        }
        self.service = Service("mlflow", argv, self.workdir, env=env, cwd=self.workdir,
                               detached=self.detached)
        self.service.start()
        self.service.wait_ready(self._ready, timeout, "answering /health")

    def stop(self) -> None:
        """Stop the server (its store stays)."""
        if self.service is not None:
            self.service.stop()

    def __enter__(self) -> LocalMlflow:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
