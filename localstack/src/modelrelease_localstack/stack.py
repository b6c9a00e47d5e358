"""The whole local stack as one object: control plane, node, registry, MLflow, Prefect.

:class:`Stack` brings the parts up in dependency order, reporting one progress line per
step, then pushes the self-contained serving base (``REGISTRY/ml/serving-base:1``, built
with mmdebstrap and cached outside the stack) and registers the demo model (``iris-clf``
with alias ``champion``) unless MLflow already has it::

    PostgreSQL -> control plane -> registry -> node -> metrics-server -> MLflow -> serving
    base -> demo model -> Prefect -> metrics (metrics-server's first scrapes)

Prefect's server and MLflow keep their data in the stack's PostgreSQL (Debian's, see
``modelrelease_localstack.postgres``), as production installs do; ``database="sqlite"`` (the demo's
choice) keeps it in sqlite files instead, with one process less.

The node is a real one (``localstack.kubenode``): containerd, kubelet, kube-proxy, the CNI
bridge and cluster DNS, joined to the control plane. Only one runs per host.

Prefect is spawned first and waited for in its place: its start is mostly imports and
database migrations (~10 s on a fresh database), which then overlap the control plane's.
metrics-server (``modelrelease_localstack.metrics_server``) is started right after the node,
with its APIService Available; its first two kubelet scrapes (10 s apart: ``kubectl top``
and HorizontalPodAutoscalers have data) are waited for last, so the later steps overlap them.
With ``metrics_server=False`` the stack starts without it (HorizontalPodAutoscalers then
have no data and do not act), and :meth:`Stack.start_metrics_server` adds it to the running
stack later: the tests' stack does, for the tests that need it, so a new machine's tests
need not wait for its build (``scripts/prepare``).

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

Layout of ``ROOT``: ``postgres/``, ``controlplane/``, ``node/``, ``metrics-server/``,
``registry/``, ``mlflow/``,
``prefect/`` (state and logs of each part), ``cache/`` (build cache of the serving base),
``stack.json``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from modelrelease.errors import PipelineError, StackError
from modelrelease_localstack.controlplane import ControlPlane, kube_assets_dir
from modelrelease_localstack.metrics_server import (
    API_SERVICE,
    MetricsServer,
    metrics_server_binary,
)
from modelrelease_localstack.mlflow_server import LocalMlflow
from modelrelease_localstack.postgres import LocalPostgres
from modelrelease_localstack.prefect_server import LocalPrefect
from modelrelease_localstack.process import free_ports, tail
from modelrelease_localstack.registry import LocalRegistry, registry_binary

if TYPE_CHECKING:
    from modelrelease_localstack.kubenode import KubeNode

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
    "IN_CLUSTER",
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

from modelrelease_localstack.stack_state import (  # noqa: F401 - re-exported
    BASE_REPOSITORY,
    DEFAULT_ROOT,
    DEMO_ALIAS,
    DEMO_MODEL,
    ENV_KUBECONFIG,
    ENV_MLFLOW,
    ENV_PREFECT,
    ENV_REGISTRY,
    ENV_SERVING_BASE,
    GROUPS,
    IN_CLUSTER,
    KUBELET_COMPONENTS,
    NODE_STOP_GRACE_S,
    REAL_BASE_TAG,
    STATE_FILE,
    STOP_GRACE_S,
    ComponentStatus,
    Database,
    Group,
    ProcessRecord,
    Progress,
    StackState,
    T,
    _front_door_ok,
    _http_ok,
    _kube_get,
    _model_alias_version,
    _node_ready,
    _port_free,
    _proc_stat,
    _process_table,
    _quiet_failures,
    _rss_bytes,
    _same_process,
    _statuses,
    _stop_records,
    _Stoppable,
    _sweep_group,
    _tree,
    _write_state,
    read_state,
    stack_status,
    start_ticks,
    state_env,
    stop_stack,
    unhealthy,
)


class Stack:
    """The local stack: control plane, a real node, registry, MLflow and Prefect.

    Args:
        root: Directory for every part's state and logs (``stack.json`` in detached mode).
        gpus: ``nvidia.com/gpu`` capacity of the node.
        detached: Let the processes outlive this one and re-use a healthy running stack
            recorded in ``root`` (``modelrelease dev up``).
        progress: Called with one line per step.
        node: Start a node (without it pods stay Pending).
        node_name: The Node's name.
        database: Where Prefect's server and MLflow keep their data: ``postgresql`` (the
            stack's own PostgreSQL server) or ``sqlite`` (files, one process less).
        metrics_server: Start metrics-server with the node; False: not now
            (:meth:`start_metrics_server` adds it later).

    Example:
        >>> with Stack(tmp_path) as stack:  # doctest: +SKIP
        ...     os.environ.update(stack.env())
    """

    def __init__(self, root: Path | None = None, *, gpus: int = 1, detached: bool = False,
                 progress: Progress | None = None, node: bool = True,
                 node_name: str = "node-1", database: Database = "postgresql",
                 metrics_server: bool = True) -> None:
        self.root = Path(root or DEFAULT_ROOT).expanduser().absolute()
        self.gpus = gpus
        self.detached = detached
        self.progress: Progress = _quiet_failures(progress)
        self.with_node = node
        self.node_name = node_name
        self.database: Database = database
        self.with_metrics_server = metrics_server
        self.postgres: LocalPostgres | None = None
        self.controlplane: ControlPlane | None = None
        self.node: KubeNode | None = None
        self.metrics_server: MetricsServer | None = None
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
        if self.with_node and self.with_metrics_server:
            metrics_server_binary()  # says `scripts/metrics-server-assets`
        previous = read_state(self.root) if self.detached else None
        if previous is not None:
            self.progress(f"stack in {self.root} is not healthy "
                          f"({'; '.join(unhealthy(previous))}); restarting it")
            stop_stack(self.root, self.progress)
        ports = self._ports(previous)
        state = self.state = StackState(
            root=str(self.root), detached=self.detached, gpus=self.gpus, ports=ports,
            database=self.database,
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
            ("metrics-server", self.metrics_server), ("node", self.node),
            ("control plane", self.controlplane), ("postgres", self.postgres)]
        for name, part in parts:
            if part is None:
                continue
            try:
                part.stop()
            except PipelineError as exc:
                errors.append(f"{name}: {exc.message}")
        self.prefect = self.mlflow = self.registry = self.node = self.controlplane = None
        self.metrics_server = None
        self.postgres = None
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

    def stop_part(self, name: str) -> None:
        """Stop one process of the running stack, as an outage would (the faults tests).

        ``name`` is ``kube-apiserver`` (or another control plane component),
        ``containerd``, ``kubelet``, ``kube-proxy``, ``registry``, ``mlflow`` or ``prefect``;
        its ports and data stay for :meth:`start_part`. Stopping the kubelet or containerd
        does not stop the pods (as on any node).

        Raises:
            StackError: No such part runs in this process.
        """
        if name in KUBELET_COMPONENTS and self.node is not None:
            self.node.stop_component(name)
        elif name in ("registry", "mlflow", "prefect") and getattr(self, name) is not None:
            getattr(self, name).stop()
        elif self.controlplane is not None and name in self.controlplane.pids:
            self.controlplane.stop_component(name)
        else:
            raise StackError(f"stop part {name} of stack {self.root}: not running here")

    def start_part(self, name: str, timeout: float = 120) -> None:
        """Start a part :meth:`stop_part` stopped, on the same ports and data, until ready.

        Its process record is replaced, so :meth:`status` shows it up again.

        Raises:
            StackError: No such part, or it did not become ready in ``timeout``.
        """
        if name in KUBELET_COMPONENTS and self.node is not None:
            pid = self.node.start_component(name, timeout)
        elif name in ("registry", "mlflow", "prefect") and getattr(self, name) is not None:
            part = getattr(self, name)
            part.start(timeout=timeout)
            pid = part.service.pid
        elif self.controlplane is not None and name in self.controlplane.logs:
            pid = self.controlplane.start_component(name, timeout)
        else:
            raise StackError(f"start part {name} of stack {self.root}: not part of it")
        if self.state is None or pid is None:
            raise StackError(f"start part {name} of stack {self.root}: stack not up")
        started = start_ticks(pid)
        self.state.processes = [
            record.model_copy(update={"pid": pid, "started": started})
            if record.name == name and started is not None else record
            for record in self.state.processes]
        self._save()

    def restart(self, name: str, timeout: float = 120) -> None:
        """:meth:`stop_part`, then :meth:`start_part`: a process restart on the same ports."""
        self.stop_part(name)
        self.start_part(name, timeout)

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
            self.progress(f"note: the running stack has {'a' if has_node else 'no'} node; "
                          "`modelrelease dev down` first to change it")
        has_metrics = any(record.name == "metrics-server" for record in previous.processes)
        if has_node and has_metrics != self.with_metrics_server:
            self.progress(f"note: the running stack has {'' if has_metrics else 'no '}"
                          "metrics-server; `modelrelease dev down` first to change it")
        if previous.database != self.database:
            self.progress(f"note: the running stack keeps its data in {previous.database}, "
                          f"not {self.database}; `modelrelease dev down` first to change it")
        if previous.gpus != self.gpus and has_node:
            self.progress(f"note: the running node has {previous.gpus} GPU(s), not {self.gpus}; "
                          "`modelrelease dev down` first to change it")
        self.progress(f"re-using the stack running in {self.root} "
                      f"(up since {previous.created}, {len(previous.processes)} processes)")
        return True

    def _ports(self, previous: StackState | None) -> dict[str, int]:
        """Pick the registry, MLflow, Prefect and PostgreSQL ports: the last run's while free.

        Image references (``127.0.0.1:PORT/...``) stored in MLflow and in the cluster then
        stay valid when the stack is stopped and started again in the same root.
        """
        old = dict(previous.ports) if previous is not None else {}
        if not old:
            with contextlib.suppress(OSError, ValueError):
                old = json.loads((self.root / "ports.json").read_text())
        ports: dict[str, int] = {}
        names = ("registry", "mlflow", "prefect", "postgres")
        for name in names:
            port = old.get(name)
            if isinstance(port, int) and port not in ports.values() and _port_free(port):
                ports[name] = port
        if len(ports) < len(names):
            fresh = iter(p for p in free_ports(2 * len(names)) if p not in ports.values())
            for name in names:
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

        prefect_db = mlflow_db = None
        if self.database == "postgresql":
            with self._step("postgres") as step:
                postgres = self.postgres = LocalPostgres(
                    root / "postgres", ports["postgres"], databases=("prefect", "mlflow"),
                    detached=self.detached)
                postgres.start(timeout=min(timeout, 60))
                assert postgres.service is not None
                self._record("postgres", "postgres", postgres.service.pid,
                             postgres.service.pidfile, postgres.service.log,
                             postgres.url("postgres"))
                prefect_db = postgres.url("prefect", driver="asyncpg")
                mlflow_db = postgres.url("mlflow", driver="psycopg2")
                step.detail = f"{postgres.url('')} (databases prefect, mlflow)"

        prefect = self.prefect = LocalPrefect(root / "prefect", ports["prefect"],
                                              detached=self.detached, database_url=prefect_db)
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

        with self._step("registry") as step:
            registry = self.registry = LocalRegistry(root / "registry", port=ports["registry"],
                                                     detached=self.detached)
            registry.start(timeout=min(timeout, 30))
            assert registry.service is not None
            self._record("registry", "registry", registry.service.pid,
                         registry.service.pidfile, registry.service.log, registry.url)
            state.registry_host = registry.host
            step.detail = registry.url

        if self.with_node:
            with self._step("node") as step:
                from modelrelease_localstack.kubenode import KubeNode

                # what the pipeline's own pods (an in-cluster install) reach on this host
                kubenode = KubeNode(root / "node", cp, name=self.node_name, gpus=self.gpus,
                                    registries=[registry.host], detached=self.detached,
                                    host_ports={name: ports[name] for name in IN_CLUSTER},
                                    registry_host_ports=["registry"])
                self.node = kubenode
                kubenode.start(timeout=min(timeout, 120))  # advertises the GPUs too
                for name, pid in kubenode.pids.items():
                    self._record(name, "node", pid, kubenode.workdir / "run" / f"{name}.pid",
                                 kubenode.logs[name])
                state.node_name = kubenode.name
                state.in_cluster = kubenode.host_addresses
                step.detail = (f"Node {kubenode.name} Ready at {kubenode.node_ip} (containerd, "
                               f"kubelet, kube-proxy), nvidia.com/gpu={self.gpus}")

            if self.with_metrics_server:
                self._start_metrics_server(kubenode.node_ip, timeout)

        with self._step("mlflow") as step:
            mlflow = self.mlflow = LocalMlflow(root / "mlflow", ports["mlflow"],
                                               detached=self.detached, backend_uri=mlflow_db)
            mlflow.start(timeout=timeout)
            assert mlflow.service is not None
            self._record("mlflow", "mlflow", mlflow.service.pid, mlflow.service.pidfile,
                         mlflow.service.log, mlflow.url)
            state.mlflow_url = mlflow.url
            step.detail = mlflow.url

        pushing = f"pushing {BASE_REPOSITORY}:{REAL_BASE_TAG}"
        with self._step("serving base", pushing) as step:
            step.detail = self._push_base(registry)

        with self._step("demo model", f"looking up {DEMO_MODEL}@{DEMO_ALIAS}") as step:
            step.detail = self._register_demo_model(mlflow.url)

        with self._step("prefect", "waiting for /api/health") as step:
            step.seconds = prefect.wait(timeout)  # from its spawn to its first answer
            state.prefect_url = prefect.url
            step.detail = f"{prefect.url}, API {prefect.api_url}"

        if self.metrics_server is not None:
            # waited for last, so the steps above overlap its first scrapes
            self._wait_metrics_server(timeout)

    def start_metrics_server(self, timeout: float = 300) -> None:
        """Add metrics-server to this running stack (started with ``metrics_server=False``).

        A no-op when it runs already. Returns once ``kubectl top`` and HorizontalPodAutoscalers
        have data.

        Raises:
            StackError: Its binary is missing (with the command that builds it), the stack
                was not started by this object with a node, or it did not become ready.
        """
        if self.metrics_server is not None:
            return
        metrics_server_binary()  # says `scripts/metrics-server-assets`
        if self.state is None or self.node is None:
            raise StackError(f"start metrics-server in stack {self.root}: no node started "
                             "by this process")
        self._start_metrics_server(self.node.node_ip, timeout)
        self._wait_metrics_server(timeout)

    def _start_metrics_server(self, node_ip: str, timeout: float) -> None:
        assert self.controlplane is not None
        with self._step("metrics-server") as step:
            metrics = self.metrics_server = MetricsServer(
                self.root / "metrics-server", self.controlplane, node_ip=node_ip,
                detached=self.detached)
            metrics.start(timeout=min(timeout, 60))
            assert metrics.service is not None
            self._record("metrics-server", "metrics", metrics.service.pid, metrics.pidfile,
                         metrics.log, metrics.url)
            step.detail = (f"{metrics.url}, APIService {API_SERVICE} Available; its first "
                           "scrapes are waited for last")

    def _wait_metrics_server(self, timeout: float) -> None:
        """Wait for metrics-server's data: its /readyz needs two kubelet scrapes, 10 s apart.

        Once up, `kubectl top` shows the node and the pods already running; a pod started
        later shows after its own two.
        """
        assert self.metrics_server is not None
        with self._step("metrics", "waiting for metrics-server's first scrapes") as step:
            since = self.metrics_server.wait_ready(timeout)
            step.detail = (f"/readyz answered {since:.1f}s after its start at the latest; "
                           "kubectl top and HorizontalPodAutoscalers have data")

    def _push_base(self, registry: LocalRegistry) -> str:
        from modelrelease.adapters.oci_registry import RegistryClient
        from modelrelease.build.serving_base import build_serving_base
        from modelrelease.settings import PipelineSettings, RegistryConfig

        state = self.state
        assert state is not None
        with RegistryClient(RegistryConfig()) as client:
            # the user's build cache (MODELRELEASE_BUILD__CACHE_DIR): the base's rootfs takes
            # minutes to build, so it outlives any one stack
            digest = build_serving_base(
                f"{registry.host}/{BASE_REPOSITORY}:{REAL_BASE_TAG}", client,
                PipelineSettings().build.cache_dir, progress=self.progress).digest
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
        from modelrelease_localstack.demo_model import register_iris_model

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
