"""The stack's PostgreSQL (Debian's server) under Prefect's server and MLflow, for real.

One cluster in a 0700 directory of root's (as pytest's and ``dev up``'s are): the server
runs unprivileged in a user namespace, yet every file it made is root's; Prefect's server
and MLflow migrate their schemas into it and answer; the data survives a restart.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import psycopg2
import pytest

from modelrelease_localstack.mlflow_server import LocalMlflow
from modelrelease_localstack.postgres import LocalPostgres
from modelrelease_localstack.prefect_server import LocalPrefect
from tests.support import prefect_call

pytestmark = pytest.mark.integration


def _tables(url: str) -> set[str]:
    with psycopg2.connect(url) as db, db.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in cursor.fetchall()}


def test_prefect_and_mlflow_keep_their_data_in_the_stacks_postgres(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    postgres = LocalPostgres(tmp_path / "postgres", databases=("prefect", "mlflow"))
    with postgres:
        with LocalPrefect(tmp_path / "prefect",
                          database_url=postgres.url("prefect", driver="asyncpg")) as prefect, \
                LocalMlflow(tmp_path / "mlflow",
                           backend_uri=postgres.url("mlflow", driver="psycopg2")) as mlflow:
            made = prefect_call(prefect.api_url, "POST", "/flows/", {"name": "pg-check"})
            assert made.status_code in (200, 201), made.text
            assert httpx.post(f"{mlflow.url}/api/2.0/mlflow/registered-models/create",
                              json={"name": "pg-model"}, timeout=30).status_code == 200
        assert {"flow", "flow_run", "deployment"} <= _tables(postgres.url("prefect"))
        assert {"registered_models", "model_versions"} <= _tables(postgres.url("mlflow"))
        assert not (tmp_path / "prefect" / "prefect.db").exists()  # not on sqlite
        assert not (tmp_path / "mlflow" / "mlflow.db").exists()
    if os.geteuid() == 0:  # run unprivileged, yet nothing left owned by another user
        strangers = [p for p in (tmp_path / "postgres").rglob("*") if p.stat().st_uid != 0]
        assert strangers == []
    # the same cluster again: the data stayed
    with postgres, psycopg2.connect(postgres.url("prefect")) as db, db.cursor() as cursor:
        cursor.execute("SELECT name FROM flow")
        assert ("pg-check",) in cursor.fetchall()
    assert postgres.service is not None and not postgres.service.running()

