"""The local stack's record: ``stack.json``, its processes, their health, and stopping them.

Kept apart from ``stack.Stack`` (which starts things) so ``dev status`` and ``dev down`` work
from the record alone, from any process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from modelrelease.errors import StackError
from modelrelease_localstack.process import pid_alive, terminate

if TYPE_CHECKING:
    from modelrelease_localstack.controlplane import ControlPlane


DEFAULT_ROOT: Final = Path.home() / ".cache" / "modelrelease" / "stack"
"""Where ``modelrelease dev up`` keeps the stack unless ``--root`` says otherwise."""

STATE_FILE: Final = "stack.json"
BASE_REPOSITORY: Final = "ml/serving-base"
REAL_BASE_TAG: Final = "1"
"""The tag of the self-contained serving base (``build.serving_base``) the node runs."""
NodeKind = Literal["agent", "kubelet"]
"""The stack's node: ``kubelet`` (a real node). ``agent`` is only read from the state of a
stack started before the Python node agent was removed: such a stack is stopped by PID."""
KUBELET_COMPONENTS: Final = ("containerd", "kubelet", "kube-proxy")
DEMO_MODEL: Final = "iris-clf"
DEMO_ALIAS: Final = "champion"

ENV_KUBECONFIG: Final = "KUBECONFIG"
ENV_MLFLOW: Final = "MLFLOW_TRACKING_URI"
ENV_REGISTRY: Final = "LOCAL_REGISTRY"
ENV_SERVING_BASE: Final = "MODELRELEASE_BUILD__BASE_IMAGE"
ENV_PREFECT: Final = "PREFECT_API_URL"

NODE_STOP_GRACE_S: Final = 45.0
"""The node's processes get longer to stop than the rest (the kubelet's own shutdown)."""
STOP_GRACE_S: Final = 15.0

Progress = Callable[[str], None]
Group = Literal["postgres", "controlplane", "node", "metrics", "registry", "mlflow", "prefect"]
GROUPS: Final[tuple[Group, ...]] = ("postgres", "controlplane", "node", "metrics", "registry",
                                    "mlflow", "prefect")
"""The parts in start order (stopped in reverse)."""
T = TypeVar("T")
Database = Literal["postgresql", "sqlite"]
"""Where Prefect's server and MLflow keep their data: the stack's PostgreSQL, or sqlite."""


class _Stoppable(Protocol):
    def stop(self) -> None: ...


class ProcessRecord(BaseModel):
    """One running process of the stack, as recorded in ``stack.json``.

    Attributes:
        name: The process (``postgres``, ``etcd``, ``kube-apiserver``, ..., ``kubelet``,
            ``registry``, ``mlflow``, ``prefect``).
        group: The part of the stack it belongs to.
        pid: Its PID (also its process group and session: children start a new session).
        started: Its start time from ``/proc/PID/stat`` (clock ticks after boot), which tells
            a recycled PID apart.
        pidfile: Its pidfile.
        log: Its log file.
        url: Where it answers, if it is the part's front door.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    group: Group
    pid: int
    started: int
    pidfile: str
    log: str
    url: str | None = None


IN_CLUSTER: Final = ("registry", "mlflow", "prefect")
"""The stack's services that pods reach through the node's relay (``StackState.in_cluster``)."""


class StackState(BaseModel):
    """Everything ``stack.json`` holds about a started (or starting) stack."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    root: str
    detached: bool
    phase: Literal["starting", "up"] = "starting"
    created: str
    gpus: int
    node_kind: NodeKind = "kubelet"
    database: Database = "sqlite"
    node_name: str | None = None
    kubeconfig: str | None = None
    api_server: str | None = None
    registry_host: str | None = None
    mlflow_url: str | None = None
    prefect_url: str | None = None
    base_digest: str | None = None
    serving_base: str | None = None
    demo_model_version: str | None = None
    ports: dict[str, int] = {}
    in_cluster: dict[str, str] = {}
    """Where pods reach the stack's registry, MLflow and Prefect (``10.245.N.1:PORT``, the
    node's relay), by name; empty without a node."""
    seconds: dict[str, float] = {}
    processes: list[ProcessRecord] = []

    def env(self) -> dict[str, str]:
        """The environment clients need; see :func:`state_env`."""
        return state_env(self)


class ComponentStatus(BaseModel):
    """What ``dev status`` reports for one process."""

    model_config = ConfigDict(frozen=True)

    name: str
    group: str
    up: bool
    pid: int
    url: str | None
    rss_bytes: int
    processes: int
    log: str


# -- /proc helpers ---------------------------------------------------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` after the command name (state is index 0)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks after boot, or None if it does not run."""
    fields = _proc_stat(pid)
    if fields is None or fields[0] == "Z":
        return None
    return int(fields[19])


def _same_process(record: ProcessRecord) -> bool:
    return pid_alive(record.pid) and start_ticks(record.pid) == record.started


def _process_table() -> dict[int, tuple[int, int]]:
    """Every live process: PID -> (parent PID, process group)."""
    table: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _proc_stat(int(entry.name))
        if fields is None or fields[0] == "Z":
            continue
        table[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return table


def _tree(pid: int, table: dict[int, tuple[int, int]]) -> list[int]:
    """``pid``, its descendants and the rest of its process group (its session's workers)."""
    found = {pid} if pid in table else set()
    changed = True
    while changed:
        changed = False
        for other, (ppid, pgid) in table.items():
            if other not in found and (ppid in found or pgid == pid):
                found.add(other)
                changed = True
    return sorted(found)


def _rss_bytes(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def _sweep_group(pgid: int, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, whatever is left of process group ``pgid``."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        end = time.monotonic() + wait
        while time.monotonic() < end:
            if not any(g == pgid for _, g in _process_table().values()):
                return
            time.sleep(0.1)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as servers bind: a port whose last connections linger in TIME_WAIT is free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# -- probes ----------------------------------------------------------------------------------


def _http_ok(url: str, context: ssl.SSLContext | None = None, timeout: float = 3) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError as exc:
        return exc.code == 401 and url.endswith("/v2/")  # a registry asking for auth is up
    except (OSError, ValueError):
        return False


def _kube_get(kubeconfig: Path, path: str) -> object | None:
    """GET ``path`` on the API server with the admin kubeconfig's certificate; JSON or None."""
    try:
        config = json.loads(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        context = ssl.create_default_context(cafile=cluster["certificate-authority"])
        context.load_cert_chain(user["client-certificate"], user["client-key"])
        with urllib.request.urlopen(cluster["server"] + path, timeout=3,
                                    context=context) as response:
            body: object = json.loads(response.read())
            return body
    except (OSError, ValueError, KeyError, IndexError, TypeError, ssl.SSLError):
        return None


def _node_ready(kubeconfig: Path, name: str) -> bool:
    node = _kube_get(kubeconfig, f"/api/v1/nodes/{name}")
    if not isinstance(node, dict):
        return False
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _model_alias_version(tracking_uri: str, name: str, alias: str) -> str | None:
    """The version MLflow's alias points at, via the REST API (no mlflow import)."""
    query = urllib.parse.urlencode({"name": name, "alias": alias})
    url = f"{tracking_uri}/api/2.0/mlflow/registered-models/alias?{query}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            version = json.loads(response.read())["model_version"]["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(version)


def _front_door_ok(state: StackState, record: ProcessRecord) -> bool:
    """Whether the part ``record`` belongs to answers (checked on its front door only)."""
    if record.name == "kube-apiserver" and state.kubeconfig:
        namespace = _kube_get(Path(state.kubeconfig), "/api/v1/namespaces/default")
        return isinstance(namespace, dict)
    if record.name == "kubelet" and state.kubeconfig and state.node_name:
        return _node_ready(Path(state.kubeconfig), state.node_name)
    if record.name == "metrics-server" and record.url:  # alive; /readyz waits for scrapes
        ca = Path(state.root) / "controlplane" / "pki" / "ca.crt"
        with contextlib.suppress(OSError, ssl.SSLError):
            return _http_ok(f"{record.url}/livez", ssl.create_default_context(cafile=str(ca)))
        return False
    if record.name == "registry" and record.url:
        return _http_ok(f"{record.url}/v2/")
    if record.name == "mlflow" and record.url:
        return _http_ok(f"{record.url}/health")
    if record.name == "prefect" and record.url:
        return _http_ok(f"{record.url}/api/health")
    if record.name == "postgres" and record.url:
        return _tcp_ok(record.url)
    return True


def _tcp_ok(url: str) -> bool:
    """Whether ``url``'s host and port accept a TCP connection."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432),
                                      timeout=2):
            return True
    except OSError:
        return False


# -- state file ------------------------------------------------------------------------------


def read_state(root: Path) -> StackState | None:
    """The stack recorded in ``root/stack.json``, or None if there is none.

    Raises:
        StackError: The file exists but cannot be read.
    """
    path = Path(root) / STATE_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StackError(f"read stack state {path}: {exc}") from exc
    try:
        return StackState.model_validate_json(text)
    except ValueError as exc:
        raise StackError(f"read stack state {path}: not a stack file ({exc}); "
                         "stop its processes by hand and remove it") from exc


def _write_state(state: StackState) -> None:
    path = Path(state.root) / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(state.model_dump_json(indent=2) + "\n")
    tmp.replace(path)


def state_env(state: StackState) -> dict[str, str]:
    """The environment that points clients at a stack.

    ``KUBECONFIG``, ``MLFLOW_TRACKING_URI``, ``LOCAL_REGISTRY`` (``127.0.0.1:PORT``),
    ``MODELRELEASE_BUILD__BASE_IMAGE`` (the serving base pinned by digest, the default
    ``--base`` of ``modelrelease image build``) and ``PREFECT_API_URL``.

    Raises:
        StackError: The stack has not finished starting.
    """
    values = {
        ENV_KUBECONFIG: state.kubeconfig,
        ENV_MLFLOW: state.mlflow_url,
        ENV_REGISTRY: state.registry_host,
        ENV_SERVING_BASE: state.serving_base,
        ENV_PREFECT: f"{state.prefect_url}/api" if state.prefect_url else None,
    }
    missing = [key for key, value in values.items() if not value]
    if missing:
        raise StackError(f"read environment of stack {state.root}: not up yet "
                         f"({', '.join(missing)} unknown); run `modelrelease dev up`")
    return {key: str(value) for key, value in values.items()}


def unhealthy(state: StackState) -> list[str]:
    """Why a recorded stack cannot be re-used: parts down or not answering (empty: healthy)."""
    if state.phase != "up":
        return ["it did not finish starting"]
    problems = []
    for record in state.processes:
        if not _same_process(record):
            problems.append(f"{record.name} (pid {record.pid}) is not running")
        elif not _front_door_ok(state, record):
            problems.append(f"{record.name} (pid {record.pid}) does not answer")
    return problems


def _statuses(state: StackState) -> list[ComponentStatus]:
    table = _process_table()
    report = []
    for record in state.processes:
        alive = _same_process(record)
        pids = _tree(record.pid, table) if alive else []
        report.append(ComponentStatus(
            name=record.name, group=record.group,
            up=alive and _front_door_ok(state, record), pid=record.pid, url=record.url,
            rss_bytes=_rss_bytes(pids), processes=len(pids), log=record.log,
        ))
    return report


def stack_status(root: Path) -> tuple[StackState | None, list[ComponentStatus]]:
    """Each recorded process of the stack in ``root``: up or down, PID, URL, RSS.

    Up means the recorded process still runs (same start time) and, for a part's front door
    (API server, node, registry, MLflow, Prefect), that it answers. RSS sums the process, its
    descendants and the rest of its process group.

    Returns:
        The recorded state (None when ``root`` has no stack) and one status per process.
    """
    state = read_state(root)
    return state, (_statuses(state) if state is not None else [])


def _stop_records(records: list[ProcessRecord], say: Progress) -> tuple[list[str], list[str]]:
    """Stop ``records`` by PID in reverse order; return (stopped names, errors)."""
    stopped: list[str] = []
    errors: list[str] = []
    for record in reversed(records):
        if _same_process(record):
            grace = NODE_STOP_GRACE_S if record.group == "node" else STOP_GRACE_S
            began = time.monotonic()
            try:
                terminate(record.pid, grace=grace)
            except StackError as exc:
                errors.append(f"{record.name}: {exc.message}")
                continue
            stopped.append(record.name)
            say(f"stopped {record.name} (pid {record.pid}) in {time.monotonic() - began:.1f}s")
        _sweep_group(record.pid)
        Path(record.pidfile).unlink(missing_ok=True)
    return stopped, errors


def stop_stack(root: Path, progress: Progress | None = None) -> list[str]:
    """Stop every process recorded in ``root/stack.json`` by PID, in reverse start order.

    A node's pods and host changes are undone through its own teardown first. Each process
    gets SIGTERM, its grace period (the node's 45 s, the rest 15 s), then
    SIGKILL; what is left of its process group is swept. A PID whose start time no longer
    matches (recycled) is left alone. The state file is removed; the data stays.

    Returns:
        Names of the processes that were running and were stopped.

    Raises:
        StackError: A process survived SIGKILL (the state file is kept).
    """
    state = read_state(root)
    if state is None:
        return []
    say = _quiet_failures(progress)
    errors: list[str] = []
    if any(record.name == "metrics-server" for record in state.processes):
        errors += _stop_metrics_server(state, say)  # its APIService first, while the API runs
    if state.node_kind == "kubelet":  # its pods, then the host changes it made, undone
        errors += _stop_kubelet_node(state, say)
    stopped, left = _stop_records(state.processes, say)
    errors += left
    if errors:
        raise StackError(f"stop stack {root}: " + "; ".join(errors))
    (Path(root) / STATE_FILE).unlink(missing_ok=True)
    return stopped


def _running_plane(state: StackState) -> ControlPlane:
    """The control plane another process started, as far as a teardown needs it."""
    from modelrelease_localstack.controlplane import ControlPlane

    plane = ControlPlane(Path(state.root) / "controlplane", detached=True)
    plane._server = state.api_server  # the running one: teardowns reach it
    return plane


def _stop_metrics_server(state: StackState, say: Progress) -> list[str]:
    """Remove metrics-server's APIService and objects, then stop it, by its pidfile."""
    from modelrelease_localstack.metrics_server import MetricsServer

    began = time.monotonic()
    try:
        MetricsServer(Path(state.root) / "metrics-server", _running_plane(state)).stop()
    except StackError as exc:
        return [f"metrics-server: {exc.message}"]
    say(f"stopped metrics-server (APIService removed first) in {time.monotonic() - began:.1f}s")
    return []


def _stop_kubelet_node(state: StackState, say: Progress) -> list[str]:
    """Stop a kubelet node another process started, through its own teardown."""
    from modelrelease_localstack.kubenode import KubeNode

    began = time.monotonic()
    try:
        KubeNode(Path(state.root) / "node", _running_plane(state),
                 name=state.node_name or "node-1").stop()
    except StackError as exc:
        return [f"node: {exc.message}"]
    say(f"stopped node {state.node_name} (containerd, kubelet, kube-proxy; host changes "
        f"undone) in {time.monotonic() - began:.1f}s")
    return []


# -- the stack -------------------------------------------------------------------------------


def _quiet_failures(progress: Progress | None) -> Progress:
    """``progress``, except that its failures (a closed stderr pipe) never stop a start or stop."""

    def say(line: str) -> None:
        if progress is not None:
            with contextlib.suppress(Exception):
                progress(line)

    return say
