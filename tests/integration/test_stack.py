"""The whole local stack: in-process (the tests' way) and detached (``modelrelease dev``)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client, config

from modelrelease_localstack.process import pid_alive
from modelrelease_localstack.stack import (
    DEMO_ALIAS,
    DEMO_MODEL,
    ENV_KUBECONFIG,
    ENV_MLFLOW,
    ENV_PREFECT,
    ENV_REGISTRY,
    ENV_SERVING_BASE,
    STATE_FILE,
    Stack,
    StackState,
    start_ticks,
    stop_stack,
)

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).parent / "modelrelease")
MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])


def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _head_digest(url: str) -> str:
    request = urllib.request.Request(url, method="HEAD", headers={"Accept": MANIFEST_TYPES})
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.headers["Docker-Content-Digest"])


def _dev(*args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    # as a user's shell would: no MLflow pointers left over from the session's own stack
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return subprocess.run([CLI, "dev", *args], capture_output=True, text=True, timeout=timeout,
                          check=False, env=env)


def _exports(stdout: str) -> dict[str, str]:
    env = {}
    for line in stdout.splitlines():
        assert line.startswith("export "), f"not an export line on stdout: {line!r}"
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = shlex.split(value)[0]
    return env


def _survivors(state: StackState) -> list[str]:
    """Recorded processes (or members of their process groups) that still run."""
    left = []
    for record in state.processes:
        if _running(record.pid, record.started):
            left.append(f"{record.name} pid {record.pid}")
        members = [p for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == record.pid]
        left += [f"{record.name} group member {p}" for p in members if pid_alive(int(p))]
    return left


def _running(pid: int, started: int) -> bool:
    return pid_alive(pid) and start_ticks(pid) == started


def _pgid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


# -- detached: the CLI --------------------------------------------------------------------------
# It starts a node of its own, so it runs before the session's stack takes the host
# (``own_node``, see tests/conftest.py).


@pytest.mark.own_node
def test_cli_up_reuse_status_down() -> None:
    from tests.integration.test_kubenode import host_state

    # a short root: the kubelet's unix sockets live under it (108 bytes at most)
    root = Path(tempfile.mkdtemp(prefix="mr-cli-")) / "stack"
    before = host_state(root / "node")
    try:
        # without metrics-server: this test runs first on a new machine, before its build
        # is done (tests/integration/test_metrics_server.py runs it on the session's stack)
        first = _dev("up", "--root", str(root), "--no-metrics-server")
        assert first.returncode == 0, first.stderr
        env = _exports(first.stdout)
        assert set(env) == {ENV_KUBECONFIG, ENV_MLFLOW, ENV_REGISTRY, ENV_SERVING_BASE,
                            ENV_PREFECT}
        assert "control plane: ready" in first.stderr
        state = StackState.model_validate_json((root / STATE_FILE).read_text())
        assert state.phase == "up"
        assert {r.name for r in state.processes} == {
            "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
            "containerd", "kubelet", "kube-proxy", "api-relay", "registry", "mlflow",
            "prefect", "postgres"}
        assert state.database == "postgresql"
        # every one outlived the CLI process that started it
        assert [r.name for r in state.processes if _running(r.pid, r.started)] == [
            r.name for r in state.processes]

        again = _dev("up", "--root", str(root))
        assert again.returncode == 0, again.stderr
        assert "re-using" in again.stderr
        assert "the running stack has no metrics-server" in again.stderr
        assert _exports(again.stdout) == env
        reused = StackState.model_validate_json((root / STATE_FILE).read_text())
        assert [(r.name, r.pid) for r in reused.processes] == [
            (r.name, r.pid) for r in state.processes]

        status = _dev("status", "--root", str(root), "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        report = json.loads(status.stdout)
        assert all(c["up"] for c in report["components"]), report
        assert all(c["rss_bytes"] > 0 for c in report["components"]), report
        assert report["rss_bytes"] > 200 * 2**20

        printed = _dev("env", "--root", str(root))
        assert printed.returncode == 0 and _exports(printed.stdout) == env

        down = _dev("down", "--root", str(root))
        assert down.returncode == 0, down.stderr
        assert not (root / STATE_FILE).exists()
        assert _survivors(state) == []
        gone = _dev("status", "--root", str(root))
        assert gone.returncode == 3
        after = host_state(root / "node")  # the node's pods and host changes are undone too
        assert {aspect: (after[aspect], before[aspect]) for aspect in before
                if after[aspect] != before[aspect]} == {}

        embedded = _dev("up", "--root", str(root), "--no-node", "--database", "sqlite")
        assert embedded.returncode == 0, embedded.stderr
        lite = StackState.model_validate_json((root / STATE_FILE).read_text())
        assert lite.database == "sqlite"
        assert "postgres" not in {r.name for r in lite.processes}
        assert (root / "mlflow" / "mlflow.db").is_file()
        assert (root / "prefect" / "prefect.db").is_file()
        assert _dev("down", "--root", str(root)).returncode == 0
        assert _survivors(lite) == []
    finally:
        stop_stack(root)
        shutil.rmtree(root.parent, ignore_errors=True)


# -- in-process: the session's stack (tests/conftest.py) ------------------------------------


def test_env_points_at_every_part(stack: Stack) -> None:
    env = stack.env()
    assert env[ENV_KUBECONFIG] == str(stack.kubeconfig)
    assert env[ENV_MLFLOW].startswith("http://127.0.0.1:")
    assert env[ENV_PREFECT].startswith("http://127.0.0.1:") and env[ENV_PREFECT].endswith("/api")
    assert env[ENV_SERVING_BASE].startswith(f"{env[ENV_REGISTRY]}/ml/serving-base@sha256:")


def test_kube_api_lists_the_node_with_a_gpu(stack: Stack) -> None:
    with config.new_client_from_config(config_file=str(stack.kubeconfig)) as api:
        nodes = {n.metadata.name: n for n in client.CoreV1Api(api).list_node().items}
    assert "node-1" in nodes
    node = nodes["node-1"]
    assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
    assert node.status.capacity["nvidia.com/gpu"] == "2"  # as tests/conftest.py asks


def test_mlflow_has_the_demo_model_as_champion(stack: Stack) -> None:
    from mlflow.tracking import MlflowClient

    version = MlflowClient(tracking_uri=stack.env()[ENV_MLFLOW]).get_model_version_by_alias(
        DEMO_MODEL, DEMO_ALIAS)
    assert version.name == DEMO_MODEL
    assert stack.state is not None and stack.state.demo_model_version == str(version.version)


def test_registry_has_the_serving_base(stack: Stack) -> None:
    env = stack.env()
    pinned = env[ENV_SERVING_BASE]
    repository, _, digest = pinned.partition("@")
    path = repository.split("/", 1)[1]
    base_url = f"http://{env[ENV_REGISTRY]}/v2/{path}/manifests"
    assert _head_digest(f"{base_url}/{digest}") == digest
    assert _head_digest(f"{base_url}/1") == digest


def test_prefect_is_healthy(stack: Stack) -> None:
    api_url = stack.env()[ENV_PREFECT]
    assert _get_json(f"{api_url}/health") is True
    assert isinstance(_get_json(f"{api_url}/admin/version"), str)


def test_prefect_and_mlflow_keep_their_data_in_postgres(stack: Stack) -> None:
    import psycopg2

    assert stack.state is not None and stack.state.database == "postgresql"
    assert stack.postgres is not None
    with psycopg2.connect(stack.postgres.url("mlflow")) as db, db.cursor() as cursor:
        cursor.execute("SELECT name FROM registered_models")
        assert (DEMO_MODEL,) in cursor.fetchall()
    with psycopg2.connect(stack.postgres.url("prefect")) as db, db.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM block_type")  # registered at the server's start
        (count,) = cursor.fetchone() or (0,)
        assert count > 0
    assert not (stack.root / "mlflow" / "mlflow.db").exists()
    assert not (stack.root / "prefect" / "prefect.db").exists()


def test_status_reports_every_process_up(stack: Stack) -> None:
    report = stack.status()
    assert {c.name for c in report} >= {"kube-apiserver", "kubelet", "registry", "mlflow",
                                         "prefect", "postgres"}
    assert all(c.up and c.rss_bytes > 0 for c in report), report
