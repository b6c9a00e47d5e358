"""The whole local stack as one object: control plane, node, registry, MLflow, Prefect.

:class:`Stack` brings the parts up in dependency order, reporting one progress line per
step, then pushes the dev serving base (``REGISTRY/ml/serving-base:dev``) and registers the
demo model (``iris-clf`` with alias ``champion``) unless MLflow already has it::

    control plane -> node agent -> registry -> MLflow -> Prefect -> serving base -> demo model

Prefect is spawned first and waited for in its place: its start is mostly imports and
database migrations (~10 s on a fresh database), which then overlap the control plane's.

Two modes:

* In-process (``detached=False``, a context manager): every child dies with this process
  (parent-death signal) and :meth:`Stack.down` stops them. The tests' session fixture.
* Detached (``detached=True``, ``modelrelease dev up``): the processes outlive the CLI. What
  runs is recorded in ``ROOT/stack.json`` (ports, PIDs with their start times, pidfiles, logs,
  the pinned base), written after every step so a partial start can be stopped too. A second
  ``up`` that finds every recorded process alive and answering re-uses it and starts nothing;
  :func:`stop_stack` stops every recorded process by PID, in reverse order, and
  :func:`stack_status` reports each one with its URL and resident memory.

A PID is only trusted while ``/proc/PID/stat`` shows the start time recorded with it, so a
recycled PID is never signalled. Each child leads its own session, so a process group left
behind by a stopped child (its workers) is swept by the same PID.

Layout of ``ROOT``: ``controlplane/``, ``node/``, ``registry/``, ``mlflow/``, ``prefect/``
(state and logs of each part), ``cache/`` (build cache of the serving base), ``stack.json``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from modelrelease.errors import PipelineError, StackError
from modelrelease.localstack.controlplane import ControlPlane, kube_assets_dir
from modelrelease.localstack.mlflow_server import LocalMlflow
from modelrelease.localstack.prefect_server import LocalPrefect
from modelrelease.localstack.process import free_ports, pid_alive, tail, terminate
from modelrelease.localstack.registry import LocalRegistry, registry_binary

if TYPE_CHECKING:
    from modelrelease.localstack.node import LocalNode

__all__ = [
    "BASE_REPOSITORY",
    "DEFAULT_ROOT",
    "DEMO_ALIAS",
    "DEMO_MODEL",
    "ENV_KUBECONFIG",
    "ENV_MLFLOW",
    "ENV_PREFECT",
    "ENV_REGISTRY",
    "ENV_SERVING_BASE",
    "STATE_FILE",
    "ComponentStatus",
    "ProcessRecord",
    "Stack",
    "StackState",
    "read_state",
    "stack_status",
    "state_env",
    "stop_stack",
]

DEFAULT_ROOT: Final = Path.home() / ".cache" / "modelrelease" / "stack"
"""Where ``modelrelease dev up`` keeps the stack unless ``--root`` says otherwise."""

STATE_FILE: Final = "stack.json"
BASE_REPOSITORY: Final = "ml/serving-base"
BASE_TAG: Final = "dev"
DEMO_MODEL: Final = "iris-clf"
DEMO_ALIAS: Final = "champion"

ENV_KUBECONFIG: Final = "KUBECONFIG"
ENV_MLFLOW: Final = "MLFLOW_TRACKING_URI"
ENV_REGISTRY: Final = "LOCAL_REGISTRY"
ENV_SERVING_BASE: Final = "MODELRELEASE_BUILD__BASE_IMAGE"
ENV_PREFECT: Final = "PREFECT_API_URL"

NODE_STOP_GRACE_S: Final = 45.0
"""The node agent stops every pod on SIGTERM (their own grace periods included)."""
STOP_GRACE_S: Final = 15.0

Progress = Callable[[str], None]
Group = Literal["controlplane", "node", "registry", "mlflow", "prefect"]
GROUPS: Final[tuple[Group, ...]] = ("controlplane", "node", "registry", "mlflow", "prefect")
"""The parts in start order (stopped in reverse)."""
T = TypeVar("T")


class _Stoppable(Protocol):
    def stop(self) -> None: ...


class ProcessRecord(BaseModel):
    """One running process of the stack, as recorded in ``stack.json``.

    Attributes:
        name: The process (``etcd``, ``kube-apiserver``, ..., ``node-agent``, ``registry``,
            ``mlflow``, ``prefect``).
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


class StackState(BaseModel):
    """Everything ``stack.json`` holds about a started (or starting) stack."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    root: str
    detached: bool
    phase: Literal["starting", "up"] = "starting"
    created: str
    gpus: int
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
    if record.name == "node-agent" and state.kubeconfig and state.node_name:
        return _node_ready(Path(state.kubeconfig), state.node_name)
    if record.name == "registry" and record.url:
        return _http_ok(f"{record.url}/v2/")
    if record.name == "mlflow" and record.url:
        return _http_ok(f"{record.url}/health")
    if record.name == "prefect" and record.url:
        return _http_ok(f"{record.url}/api/health")
    return True


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
    ``MODELRELEASE_BUILD__BASE_IMAGE`` (the dev base pinned by digest, the default
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

    Each gets SIGTERM, its grace period (the node agent 45 s, to stop its pods), then
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
    stopped, errors = _stop_records(state.processes, _quiet_failures(progress))
    if errors:
        raise StackError(f"stop stack {root}: " + "; ".join(errors))
    (Path(root) / STATE_FILE).unlink(missing_ok=True)
    return stopped


# -- the stack -------------------------------------------------------------------------------


def _quiet_failures(progress: Progress | None) -> Progress:
    """``progress``, except that its failures (a closed stderr pipe) never stop a start or stop."""

    def say(line: str) -> None:
        if progress is not None:
            with contextlib.suppress(Exception):
                progress(line)

    return say


class Stack:
    """The local stack: control plane, node agent, registry, MLflow and Prefect.

    Args:
        root: Directory for every part's state and logs (``stack.json`` in detached mode).
        gpus: ``nvidia.com/gpu`` capacity of the node.
        detached: Let the processes outlive this one and re-use a healthy running stack
            recorded in ``root`` (``modelrelease dev up``).
        progress: Called with one line per step.
        node: Start the node agent (without it pods stay Pending).
        node_name: The Node's name.

    Example:
        >>> with Stack(tmp_path) as stack:  # doctest: +SKIP
        ...     os.environ.update(stack.env())
    """

    def __init__(self, root: Path | None = None, *, gpus: int = 1, detached: bool = False,
                 progress: Progress | None = None, node: bool = True,
                 node_name: str = "node-1", node_backoff: float = 10.0) -> None:
        self.root = Path(root or DEFAULT_ROOT).expanduser().absolute()
        self.gpus = gpus
        self.detached = detached
        self.progress: Progress = _quiet_failures(progress)
        self.with_node = node
        self.node_name = node_name
        self.node_backoff = node_backoff
        self.controlplane: ControlPlane | None = None
        self.node: LocalNode | None = None
        self.registry: LocalRegistry | None = None
        self.mlflow: LocalMlflow | None = None
        self.prefect: LocalPrefect | None = None
        self.state: StackState | None = None
        self.reused = False
        """Whether :meth:`up` found a healthy running stack and re-used it."""

    # -- public ------------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig.

        Raises:
            StackError: The control plane has not started.
        """
        if self.state is None or not self.state.kubeconfig:
            raise StackError(f"use stack {self.root}: control plane not started")
        return Path(self.state.kubeconfig)

    def env(self) -> dict[str, str]:
        """The environment that points clients at this stack (see :func:`state_env`).

        Raises:
            StackError: The stack is not up.
        """
        if self.state is None:
            raise StackError(f"read environment of stack {self.root}: not started")
        return state_env(self.state)

    def up(self, timeout: float = 300) -> StackState:
        """Start the stack (or, detached, re-use a healthy one recorded in ``root``).

        Args:
            timeout: Seconds allowed for each part to become ready.

        Returns:
            The stack's state (also in ``root/stack.json`` when detached).

        Raises:
            StackError: A binary is missing (with the command that installs it), or a part
                failed to start (with the last lines of its log). Everything this call
                started is stopped again.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        if self.detached and self._reuse():
            assert self.state is not None
            return self.state
        assets = kube_assets_dir()  # fail before starting anything: says `scripts/kube-assets`
        registry_binary()
        previous = read_state(self.root) if self.detached else None
        if previous is not None:
            self.progress(f"stack in {self.root} is not healthy "
                          f"({'; '.join(unhealthy(previous))}); restarting it")
            stop_stack(self.root, self.progress)
        ports = self._ports(previous)
        state = self.state = StackState(
            root=str(self.root), detached=self.detached, gpus=self.gpus, ports=ports,
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        began = time.monotonic()
        try:
            self._start(assets, ports, timeout)
        except BaseException as exc:
            self.progress(f"start failed: {exc}; stopping what was started")
            with contextlib.suppress(PipelineError):
                self.down()
            raise
        state.phase = "up"
        state.seconds["total"] = round(time.monotonic() - began, 2)
        self._save()
        self.progress(f"stack up in {state.seconds['total']:.1f}s ({self.root})")
        return state

    def down(self) -> None:
        """Stop every process of the stack, in reverse start order (its data stays).

        Each part is stopped through its own object; then every recorded PID still running
        (a re-used stack has no objects) and what is left of its process group.

        Raises:
            StackError: A process could not be stopped.
        """
        errors: list[str] = []
        parts: list[tuple[str, _Stoppable | None]] = [
            ("prefect", self.prefect), ("mlflow", self.mlflow), ("registry", self.registry),
            ("node", self.node), ("control plane", self.controlplane)]
        for name, part in parts:
            if part is None:
                continue
            try:
                part.stop()
            except PipelineError as exc:
                errors.append(f"{name}: {exc.message}")
        self.prefect = self.mlflow = self.registry = self.node = self.controlplane = None
        if self.state is not None:
            _, left = _stop_records(self.state.processes, self.progress)
            errors += left
            if self.detached and not errors:
                (self.root / STATE_FILE).unlink(missing_ok=True)
            self.state = None
        if errors:
            raise StackError(f"stop stack {self.root}: " + "; ".join(errors))

    def status(self) -> list[ComponentStatus]:
        """Each process of the stack: up or down, PID, URL and resident memory."""
        return _statuses(self.state) if self.state is not None else []

    def rss_bytes(self) -> int:
        """Summed VmRSS of every process of the stack, children included."""
        return sum(c.rss_bytes for c in self.status())

    def __enter__(self) -> Stack:
        self.up()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.down()

    # -- internals ---------------------------------------------------------------------------

    def _save(self) -> None:
        if self.state is not None and self.detached:
            _write_state(self.state)

    def _reuse(self) -> bool:
        previous = read_state(self.root)
        if previous is None or unhealthy(previous):
            return False
        self.state = previous
        self.reused = True
        has_node = any(record.group == "node" for record in previous.processes)
        if has_node != self.with_node:
            self.progress(f"note: the running stack has {'a' if has_node else 'no'} node agent; "
                          "`modelrelease dev down` first to change it")
        if previous.gpus != self.gpus and has_node:
            self.progress(f"note: the running node has {previous.gpus} GPU(s), not {self.gpus}; "
                          "`modelrelease dev down` first to change it")
        self.progress(f"re-using the stack running in {self.root} "
                      f"(up since {previous.created}, {len(previous.processes)} processes)")
        return True

    def _ports(self, previous: StackState | None) -> dict[str, int]:
        """Pick the registry, MLflow and Prefect ports: the last run's ones while free.

        Image references (``127.0.0.1:PORT/...``) stored in MLflow and in the cluster then
        stay valid when the stack is stopped and started again in the same root.
        """
        old = dict(previous.ports) if previous is not None else {}
        if not old:
            with contextlib.suppress(OSError, ValueError):
                old = json.loads((self.root / "ports.json").read_text())
        ports: dict[str, int] = {}
        for name in ("registry", "mlflow", "prefect"):
            port = old.get(name)
            if isinstance(port, int) and port not in ports.values() and _port_free(port):
                ports[name] = port
        if len(ports) < 3:
            fresh = iter(p for p in free_ports(6) if p not in ports.values())
            for name in ("registry", "mlflow", "prefect"):
                ports.setdefault(name, next(fresh))
        (self.root / "ports.json").write_text(json.dumps(ports) + "\n")
        return ports

    def _record(self, name: str, group: Group, pid: int | None, pidfile: Path, log: Path,
                url: str | None = None) -> None:
        assert self.state is not None
        if pid is None:
            raise StackError(f"start {name}: no PID after start")
        started = start_ticks(pid)
        if started is None:
            raise StackError(f"start {name}: exited right after starting; last lines of "
                             f"{log}:\n{tail(log)}")
        self.state.processes.append(ProcessRecord(
            name=name, group=group, pid=pid, started=started, pidfile=str(pidfile),
            log=str(log), url=url))
        self.state.processes.sort(key=lambda record: GROUPS.index(record.group))
        self._save()

    def _step(self, what: str, begin: str = "starting") -> _Timer:
        return _Timer(self, what, begin)

    def _start(self, assets: Path, ports: dict[str, int], timeout: float) -> None:
        state = self.state
        assert state is not None
        root = self.root

        prefect = self.prefect = LocalPrefect(root / "prefect", ports["prefect"],
                                              detached=self.detached)
        prefect.spawn()
        self.progress(f"prefect: starting in the background on {prefect.url}")
        self._record("prefect", "prefect", prefect.pid, prefect.workdir / "prefect.pid",
                     prefect.workdir / "prefect.log", prefect.url)

        with self._step("control plane") as step:
            cp = self.controlplane = ControlPlane(root / "controlplane", assets,
                                                  detached=self.detached)
            cp.start(timeout=min(timeout, 120))
            for name, pid in cp.pids.items():
                self._record(name, "controlplane", pid, cp.workdir / "run" / f"{name}.pid",
                             cp.logs[name], cp.server if name == "kube-apiserver" else None)
            state.kubeconfig = str(cp.kubeconfig)
            state.api_server = cp.server
            step.detail = cp.server

        if self.with_node:
            with self._step("node agent") as step:
                from modelrelease.localstack.node import LocalNode

                node = LocalNode(root / "node", cp.kubeconfig, name=self.node_name,
                                 gpus=self.gpus, registry_ca=None, detached=self.detached,
                                 backoff_initial=self.node_backoff)
                self.node = node
                node.start(timeout=min(timeout, 120))
                self._record("node-agent", "node", node.pid, node.workdir / "node-agent.pid",
                             node.log)
                state.node_name = node.name
                step.detail = f"Node {node.name} Ready, nvidia.com/gpu={self.gpus}"

        with self._step("registry") as step:
            registry = self.registry = LocalRegistry(root / "registry", port=ports["registry"],
                                                     detached=self.detached)
            registry.start(timeout=min(timeout, 30))
            assert registry.service is not None
            self._record("registry", "registry", registry.service.pid,
                         registry.service.pidfile, registry.service.log, registry.url)
            state.registry_host = registry.host
            step.detail = registry.url

        with self._step("mlflow") as step:
            mlflow = self.mlflow = LocalMlflow(root / "mlflow", ports["mlflow"],
                                               detached=self.detached)
            mlflow.start(timeout=timeout)
            assert mlflow.service is not None
            self._record("mlflow", "mlflow", mlflow.service.pid, mlflow.service.pidfile,
                         mlflow.service.log, mlflow.url)
            state.mlflow_url = mlflow.url
            step.detail = mlflow.url

        pushing = f"pushing {BASE_REPOSITORY}:{BASE_TAG}"
        with self._step("serving base", pushing) as step:
            step.detail = self._push_base(registry)

        with self._step("demo model", f"looking up {DEMO_MODEL}@{DEMO_ALIAS}") as step:
            step.detail = self._register_demo_model(mlflow.url)

        with self._step("prefect", "waiting for /api/health") as step:
            step.seconds = prefect.wait(timeout)  # from its spawn to its first answer
            state.prefect_url = prefect.url
            step.detail = f"{prefect.url}, API {prefect.api_url}"

    def _push_base(self, registry: LocalRegistry) -> str:
        from modelrelease.adapters.oci_registry import RegistryClient
        from modelrelease.build.base import build_dev_base
        from modelrelease.settings import RegistryConfig

        state = self.state
        assert state is not None
        with RegistryClient(RegistryConfig()) as client:
            digest, _ = build_dev_base(f"{registry.host}/{BASE_REPOSITORY}:{BASE_TAG}", client,
                                       self.root / "cache")
        state.base_digest = digest
        state.serving_base = f"{registry.host}/{BASE_REPOSITORY}@{digest}"
        return state.serving_base

    def _register_demo_model(self, tracking_uri: str) -> str:
        state = self.state
        assert state is not None
        version = _model_alias_version(tracking_uri, DEMO_MODEL, DEMO_ALIAS)
        if version is not None:
            state.demo_model_version = version
            return f"{DEMO_MODEL} v{version} @{DEMO_ALIAS} already registered"
        from modelrelease.localstack.demo_model import register_iris_model

        try:
            # MLflow prints run links to stdout, which belongs to `dev up`'s env lines.
            with contextlib.redirect_stdout(sys.stderr):
                version = register_iris_model(tracking_uri, DEMO_MODEL, alias=DEMO_ALIAS)
        except Exception as exc:  # mlflow raises its own and sklearn's errors
            raise StackError(f"register demo model {DEMO_MODEL} in {tracking_uri}: {exc}") from exc
        state.demo_model_version = version
        return f"registered {DEMO_MODEL} v{version} @{DEMO_ALIAS}"


class _Timer:
    """Times one step, records it and reports ``what: ready in Xs (detail)``."""

    def __init__(self, stack: Stack, what: str, begin: str) -> None:
        self.stack = stack
        self.what = what
        self.begin = begin
        self.detail = ""
        self.began = 0.0
        self.seconds: float | None = None
        """Set by the step to report another duration than the step's own."""

    def __enter__(self) -> _Timer:
        self.began = time.monotonic()
        self.stack.progress(f"{self.what}: {self.begin}")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            return
        seconds = self.seconds if self.seconds is not None else time.monotonic() - self.began
        if self.stack.state is not None:
            self.stack.state.seconds[self.what] = round(seconds, 2)
            self.stack._save()
        self.stack.progress(f"{self.what}: ready in {seconds:.1f}s"
                            + (f" ({self.detail})" if self.detail else ""))
