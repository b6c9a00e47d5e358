"""A real Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler).

The binaries come from ``scripts/kube-assets`` (built from Go modules into a cache outside the
repository) or from any directory named by ``KUBE_ASSETS``. :class:`ControlPlane` mints a
throwaway PKI for one stack, picks free loopback ports, starts the four processes with their
logs in the work directory, waits until the cluster can accept pods, and stops every process
by its own PID.

Children die with their parent: each is started with ``PR_SET_PDEATHSIG``, a pidfile per
process is written in the work directory (so a later :meth:`ControlPlane.start` in the same
directory reaps leftovers of a crashed run), and :meth:`ControlPlane.stop` is registered with
:mod:`atexit`. The parent-death signal is SIGTERM for etcd (a clean close of its database) and
SIGKILL for the Kubernetes components: they would all get it at the same moment, and an API
server told to shut down gracefully while etcd goes away hangs in its shutdown hooks for
minutes. :meth:`ControlPlane.stop` still stops them gracefully, in reverse start order.

Caveat: the kernel sends the parent-death signal when the *thread* that forked the child exits,
not the process. :meth:`ControlPlane.start` therefore arms it only when called from the main
thread; from another thread the children outlive that thread and rely on :meth:`stop`,
:mod:`atexit` and the pidfiles instead.

Example:
    >>> with ControlPlane(Path("/tmp/stack")) as cp:  # doctest: +SKIP
    ...     subprocess.run(["kubectl", "--kubeconfig", str(cp.kubeconfig), "get", "ns"])
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Final

from modelrelease.errors import StackError
from modelrelease_localstack.assets import asset_path
from modelrelease_localstack.pki import KeyPair, Pki, write_private
from modelrelease_localstack.process import Service, free_ports, reap_stale, tail

__all__ = [
    "BINARIES",
    "KUBE_VERSION",
    "ControlPlane",
    "kube_assets_dir",
    "rss_bytes",
]

KUBE_VERSION: Final = "v1.36.3"
"""The Kubernetes version ``scripts/kube-assets`` builds; part of the cache path."""

BINARIES: Final = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
"""The binaries a control plane needs, in start order."""

SERVICE_CIDR: Final = "10.96.0.0/16"
KUBERNETES_SERVICE_IP: Final = "10.96.0.1"
SERVICE_ACCOUNT_ISSUER: Final = "https://kubernetes.default.svc.cluster.local"
CONTROLLERS: Final = (
    "*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller"
)

FRONT_PROXY_CLIENT: Final = "front-proxy-client"
"""CN of the certificate the aggregation layer presents to extension API servers."""
HPA_SYNC_PERIOD_S: Final = 5
"""How often the HorizontalPodAutoscaler controller looks (the default is 15 s)."""

_LOG_TAIL_LINES: Final = 25
_STOP_GRACE_S: Final = 10.0
_PR_SET_PDEATHSIG: Final = 1


def kube_assets_dir() -> Path:
    """Return the directory holding the control plane binaries.

    ``KUBE_ASSETS`` wins when set; otherwise the cache that ``scripts/kube-assets`` fills,
    ``${MODELRELEASE_BUILD__CACHE_DIR:-~/.cache/modelrelease}/kube/<version>``.

    Returns:
        A directory containing an executable for every name in :data:`BINARIES`.

    Raises:
        StackError: If a binary is missing, with the command that builds them.
    """
    directory, origin = asset_path("KUBE_ASSETS", "kube", KUBE_VERSION, script="kube-assets")
    missing = [name for name in BINARIES if not os.access(directory / name, os.X_OK)]
    if missing:
        raise StackError(
            f"find control plane binaries {directory}: {', '.join(missing)} missing in {origin}; "
            "run `scripts/kube-assets` (builds them once from Go modules) "
            "or set KUBE_ASSETS to a directory holding " + ", ".join(BINARIES)
        )
    return directory


def _write_kubeconfig(path: Path, server: str, ca: Path, user: str, pair: KeyPair) -> Path:
    """Write a kubeconfig (JSON is valid YAML) using client-certificate authentication."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate": str(pair.cert),
                    "client-key": str(pair.key),
                },
            }
        ],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
        "preferences": {},
    }
    write_private(path, (json.dumps(config, indent=2) + "\n").encode())
    return path


class ControlPlane:
    """One local Kubernetes control plane: etcd, kube-apiserver, controller-manager, scheduler.

    Everything lives under ``workdir``: ``pki/`` (CA, certificates, keys), ``etcd/`` (data),
    ``*.kubeconfig``, ``logs/<component>.log`` and ``run/<component>.pid``.

    Args:
        workdir: Directory for the stack's state; created if missing.
        assets: Directory with the binaries; defaults to :func:`kube_assets_dir`.
        etcd_fsync: Keep etcd's fsync on. Off by default: the stack is disposable and fsync
            dominates write latency on slow disks.
        verbosity: klog ``--v`` level of the Kubernetes components.
        detached: Let the processes outlive this Python process (``modelrelease dev up``):
            no parent-death signal and no ``atexit`` stop.

    Example:
        >>> with ControlPlane(tmp_path) as cp:  # doctest: +SKIP
        ...     kubeconfig = cp.client_kubeconfig("alice", ["dev"])
    """

    def __init__(
        self,
        workdir: Path,
        assets: Path | None = None,
        *,
        etcd_fsync: bool = False,
        verbosity: int = 1,
        detached: bool = False,
    ) -> None:
        self.workdir = Path(workdir).absolute()
        self.detached = detached
        self._assets = assets
        self._etcd_fsync = etcd_fsync
        self._verbosity = verbosity
        self._procs: list[Service] = []
        self._lock = threading.Lock()
        self._atexit_registered = False
        self._server: str | None = None
        self._pki: Pki | None = None
        self._ports: dict[str, int] = {}
        self.start_seconds: float | None = None
        """Wall time of the last successful :meth:`start`."""

    # -- public properties ------------------------------------------------------------------

    @property
    def server(self) -> str:
        """The API server URL, ``https://127.0.0.1:PORT``.

        Raises:
            StackError: If the control plane was never started.
        """
        if self._server is None:
            raise StackError(f"read server of control plane {self.workdir}: not started")
        return self._server

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (``system:masters``)."""
        return self.workdir / "admin.kubeconfig"

    @property
    def ca_cert(self) -> Path:
        """The cluster CA certificate (PEM) that signs the API server and client certs."""
        return self.workdir / "pki" / "ca.crt"

    @property
    def front_proxy_dir(self) -> Path:
        """The front-proxy CA (its own, not the cluster's) and the aggregator's client pair."""
        return self.workdir / "pki" / "front-proxy"

    @property
    def etcd_endpoint(self) -> str:
        """The etcd client URL, ``http://127.0.0.1:PORT``.

        Raises:
            StackError: If the control plane was never started.
        """
        if "etcd" not in self._ports:
            raise StackError(f"read etcd endpoint of control plane {self.workdir}: not started")
        return f"http://127.0.0.1:{self._ports['etcd']}"

    @property
    def pids(self) -> dict[str, int]:
        """PID of every component started by this object, by component name."""
        return {p.name: p.pid for p in self._procs if p.pid is not None}

    @property
    def logs(self) -> dict[str, Path]:
        """Log file of every component, by component name."""
        return {name: self.workdir / "logs" / f"{name}.log" for name in BINARIES}

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 60) -> None:
        """Start the four components and wait until the cluster accepts pods.

        Ready means: ``/readyz`` of the API server answers ``ok`` to the admin certificate,
        controller-manager and scheduler answer ``/healthz``, and the ``default`` namespace and
        its ``default`` service account exist.

        Args:
            timeout: Seconds to wait for readiness, overall.

        Raises:
            StackError: If a binary is missing, a component exits, or readiness times out; the
                message carries the last lines of the failing component's log. Everything
                started is stopped again before raising.
        """
        with self._lock:
            if self._procs:
                raise StackError(f"start control plane {self.workdir}: already started")
            began = time.monotonic()
            deadline = began + timeout
            assets = self._assets or kube_assets_dir()
            missing = [n for n in BINARIES if not os.access(assets / n, os.X_OK)]
            if missing:
                raise StackError(
                    f"start control plane {self.workdir}: {', '.join(missing)} missing in "
                    f"{assets}; run `scripts/kube-assets`"
                )
            for sub in ("logs", "run", "etcd"):
                (self.workdir / sub).mkdir(parents=True, exist_ok=True)
            os.chmod(self.workdir / "etcd", 0o700)
            self._reap_stale()
            try:
                self._prepare()
                if not self._atexit_registered and not self.detached:
                    atexit.register(self.stop)
                    self._atexit_registered = True
                self._launch(assets, deadline)
            except BaseException:
                self._stop_locked()
                raise
            self.start_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Stop every component by its own PID: SIGTERM, wait, then SIGKILL.

        Safe to call twice and from :mod:`atexit`. The work directory is kept.
        """
        with self._lock:
            self._stop_locked()
            if self._atexit_registered:
                atexit.unregister(self.stop)
                self._atexit_registered = False

    def stop_component(self, name: str) -> None:
        """Stop one running component (a fault test); :meth:`start_component` brings it back.

        Raises:
            StackError: No such component runs, or it would not stop.
        """
        with self._lock:
            self._component(name).stop()

    def start_component(self, name: str, timeout: float = 60) -> int:
        """Start a stopped component again: same flags, ports and data; its PID once healthy.

        Raises:
            StackError: No such component, it exits, or it is not healthy in ``timeout``.
        """
        checks: dict[str, Callable[[], bool]] = {
            "etcd": self._etcd_healthy,
            "kube-apiserver": lambda: self._api_get("/readyz") == "ok",
            "kube-controller-manager":
                lambda: self._component_healthy(self._ports["controller-manager"]),
            "kube-scheduler": lambda: self._component_healthy(self._ports["scheduler"]),
        }
        with self._lock:
            proc = self._component(name)
            proc.start()
            self._wait(proc, time.monotonic() + timeout, f"{name} healthy again", checks[name])
            assert proc.pid is not None
            return proc.pid

    def _component(self, name: str) -> Service:
        found = [p for p in self._procs if p.name == name]
        if not found:
            raise StackError(f"find component {name} of control plane {self.workdir}: not "
                             f"started here (started: {', '.join(self.pids) or 'none'})")
        return found[0]

    # -- kubeconfigs ------------------------------------------------------------------------

    def client_kubeconfig(self, user: str, groups: list[str]) -> Path:
        """Mint a client certificate for ``user`` in ``groups`` and write a kubeconfig for it.

        The user has no permissions beyond what RBAC bindings grant to that name or those
        groups (plus ``system:authenticated`` defaults), which makes it the tool for
        least-privilege tests.

        Args:
            user: The Kubernetes user name (certificate CN).
            groups: The user's groups (certificate O values).

        Returns:
            Path of the kubeconfig, ``<workdir>/users/<user>.kubeconfig``.

        Raises:
            StackError: If the control plane was never started.
        """
        pki = self._require_pki()
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in user)
        users = self.workdir / "users"
        users.mkdir(exist_ok=True)
        pair = pki.issue(f"user-{safe}", user, organizations=list(groups))
        return _write_kubeconfig(
            users / f"{safe}.kubeconfig", self.server, self.ca_cert, user, pair
        )

    # -- internals --------------------------------------------------------------------------

    def _require_pki(self) -> Pki:
        if self._pki is None or self._server is None:
            raise StackError(f"mint credentials for control plane {self.workdir}: not started")
        return self._pki

    def _prepare(self) -> None:
        """Pick ports, write the PKI and every component's kubeconfig."""
        names = ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler")
        self._ports = dict(zip(names, free_ports(len(names)), strict=True))
        self._server = f"https://127.0.0.1:{self._ports['apiserver']}"
        pki = self._pki = Pki(self.workdir / "pki")
        pki.issue(
            "apiserver",
            "kube-apiserver",
            server=True,
            dns_names=[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            ips=["127.0.0.1", KUBERNETES_SERVICE_IP],
        )
        pki.issue(
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            organizations=["system:masters"],
        )
        pki.service_account_keys()
        # The aggregation layer's client identity comes from a CA of its own: a certificate
        # of the cluster CA named front-proxy-client (any client_kubeconfig can mint one)
        # must not be able to assert users to extension API servers.
        Pki(self.front_proxy_dir, ca_name="modelrelease-front-proxy-ca").issue(
            FRONT_PROXY_CLIENT, FRONT_PROXY_CLIENT)
        for stem, user, groups, kubeconfig in (
            ("admin", "kubernetes-admin", ["system:masters"], self.kubeconfig),
            (
                "controller-manager",
                "system:kube-controller-manager",
                [],
                self.workdir / "controller-manager.kubeconfig",
            ),
            ("scheduler", "system:kube-scheduler", [], self.workdir / "scheduler.kubeconfig"),
        ):
            pair = pki.issue(stem, user, organizations=groups)
            _write_kubeconfig(kubeconfig, self._server, self.ca_cert, user, pair)

    def _commands(self, assets: Path) -> list[tuple[str, list[str]]]:
        w, p, pki = self.workdir, self._ports, self.workdir / "pki"
        v = f"--v={self._verbosity}"
        etcd_client = f"http://127.0.0.1:{p['etcd']}"
        etcd_peer = f"http://127.0.0.1:{p['etcd-peer']}"
        etcd = [
            str(assets / "etcd"),
            "--name=default",
            f"--data-dir={w / 'etcd'}",
            f"--listen-client-urls={etcd_client}",
            f"--advertise-client-urls={etcd_client}",
            f"--listen-peer-urls={etcd_peer}",
            f"--initial-advertise-peer-urls={etcd_peer}",
            f"--initial-cluster=default={etcd_peer}",
            "--initial-cluster-state=new",
            "--log-level=warn",
            # one member, no peers: a short election timeout only shortens the first election
            "--heartbeat-interval=50",
            "--election-timeout=250",
        ]
        if not self._etcd_fsync:
            etcd.append("--unsafe-no-fsync")
        apiserver = [
            str(assets / "kube-apiserver"),
            f"--etcd-servers={etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={p['apiserver']}",
            "--endpoint-reconciler-type=none",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            # reach kubelets on the address they report, never by resolving a node's name
            "--kubelet-preferred-address-types=InternalIP",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            *self._aggregation_flags(),
            "--profiling=false",
            v,
        ]
        kcm_config = str(w / "controller-manager.kubeconfig")
        controller_manager = [
            str(assets / "kube-controller-manager"),
            f"--kubeconfig={kcm_config}",
            f"--authentication-kubeconfig={kcm_config}",
            f"--authorization-kubeconfig={kcm_config}",
            "--bind-address=127.0.0.1",
            f"--secure-port={p['controller-manager']}",
            f"--cert-dir={w / 'run' / 'controller-manager-certs'}",
            f"--controllers={CONTROLLERS}",
            "--use-service-account-credentials=true",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allocate-node-cidrs=false",
            "--leader-elect=false",
            f"--horizontal-pod-autoscaler-sync-period={HPA_SYNC_PERIOD_S}s",
            "--profiling=false",
            v,
        ]
        sched_config = str(w / "scheduler.kubeconfig")
        scheduler = [
            str(assets / "kube-scheduler"),
            f"--kubeconfig={sched_config}",
            f"--authentication-kubeconfig={sched_config}",
            f"--authorization-kubeconfig={sched_config}",
            "--bind-address=127.0.0.1",
            f"--secure-port={p['scheduler']}",
            f"--cert-dir={w / 'run' / 'scheduler-certs'}",
            "--leader-elect=false",
            "--profiling=false",
            v,
        ]
        return [
            ("etcd", etcd),
            ("kube-apiserver", apiserver),
            ("kube-controller-manager", controller_manager),
            ("kube-scheduler", scheduler),
        ]

    def _aggregation_flags(self) -> list[str]:
        """The API server's aggregation layer (extension API servers such as metrics-server).

        Requests it proxies carry the user in ``X-Remote-*`` headers, over TLS with the
        front-proxy client certificate; the extension server trusts those headers only from
        that CA and name. ``--enable-aggregator-routing`` dials an APIService's endpoint
        (the EndpointSlice's address) rather than its ClusterIP, which only kube-proxy's
        rules on the node would route.
        """
        front = self.front_proxy_dir
        return [
            f"--requestheader-client-ca-file={front / 'ca.crt'}",
            f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--requestheader-uid-headers=X-Remote-Uid",
            f"--proxy-client-cert-file={front / (FRONT_PROXY_CLIENT + '.crt')}",
            f"--proxy-client-key-file={front / (FRONT_PROXY_CLIENT + '.key')}",
            "--enable-aggregator-routing=true",
        ]

    def _spawn(self, name: str, argv: list[str]) -> Service:
        service = Service(
            name, argv, self.workdir,
            log=self.workdir / "logs" / f"{name}.log",
            pidfile=self.workdir / "run" / f"{name}.pid",
            death_signal=signal.SIGTERM if name == "etcd" else signal.SIGKILL,
            detached=self.detached,
        )
        service.start()
        self._procs.append(service)
        return service

    def _launch(self, assets: Path, deadline: float) -> None:
        """Start etcd, then the API server, then controller-manager and scheduler.

        Each waits for the one before: the controller-manager and scheduler exit at once if
        the API server has not yet bootstrapped the RBAC rules they read their config with.
        """
        commands = dict(self._commands(assets))
        etcd = self._spawn("etcd", commands["etcd"])
        self._wait(etcd, deadline, "etcd /health", self._etcd_healthy)
        api = self._spawn("kube-apiserver", commands["kube-apiserver"])
        self._wait(
            api, deadline, "kube-apiserver /readyz", lambda: self._api_get("/readyz") == "ok"
        )
        kcm = self._spawn("kube-controller-manager", commands["kube-controller-manager"])
        sched = self._spawn("kube-scheduler", commands["kube-scheduler"])
        self._wait(
            kcm,
            deadline,
            "kube-controller-manager /healthz",
            lambda: self._component_healthy(self._ports["controller-manager"]),
        )
        self._wait(
            sched,
            deadline,
            "kube-scheduler /healthz",
            lambda: self._component_healthy(self._ports["scheduler"]),
        )
        self._wait(
            api,
            deadline,
            "namespace default",
            lambda: self._api_get("/api/v1/namespaces/default") is not None,
        )
        self._wait(
            kcm,
            deadline,
            "service account default/default",
            lambda: self._api_get("/api/v1/namespaces/default/serviceaccounts/default") is not None,
        )

    def _wait(self, proc: Service, deadline: float, what: str, check: Callable[[], bool]) -> None:
        """Poll ``check`` until true; fail fast if any component exits, or at ``deadline``."""
        delay = 0.05
        while True:
            for p in self._procs:
                failed = p.exited(what)
                if failed is not None:
                    raise StackError(f"start control plane {self.workdir}: {failed}")
            if check():
                return
            if time.monotonic() >= deadline:
                raise StackError(
                    f"start control plane {self.workdir}: timed out waiting for {what}; "
                    f"last lines of {proc.log}:\n{tail(proc.log)}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    # -- probes -----------------------------------------------------------------------------

    def _admin_context(self) -> ssl.SSLContext:
        pki = self.workdir / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return ctx

    def _api_get(self, path: str) -> str | None:
        """GET ``path`` on the API server as admin; the body on 200, else None."""
        try:
            with urllib.request.urlopen(
                self.server + path, context=self._admin_context(), timeout=5
            ) as resp:
                body: bytes = resp.read()
                return body.decode()
        except (urllib.error.URLError, OSError, ssl.SSLError):
            return None

    def _etcd_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.etcd_endpoint}/health", timeout=2) as resp:
                data = json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return isinstance(data, dict) and data.get("health") == "true"

    def _component_healthy(self, port: int) -> bool:
        # controller-manager and scheduler serve /healthz with a self-signed certificate and
        # allow it anonymously; the connection only ever goes to our own loopback port.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(
                f"https://127.0.0.1:{port}/healthz", context=ctx, timeout=2
            ) as resp:
                body: bytes = resp.read()
                return body.strip() == b"ok"
        except (urllib.error.URLError, OSError, ssl.SSLError):
            return False

    # -- stopping ---------------------------------------------------------------------------

    def _stop_locked(self) -> None:
        errors: list[str] = []
        for proc in reversed(self._procs):
            try:
                proc.stop()
            except StackError as exc:
                errors.append(str(exc))
        self._procs.clear()
        if errors:
            raise StackError(f"stop control plane {self.workdir}: " + "; ".join(errors))

    def _reap_stale(self) -> None:
        """Kill leftovers of a crashed earlier run in this workdir, recognised by pidfile."""
        for pidfile in sorted((self.workdir / "run").glob("*.pid")):
            reap_stale(pidfile)


def _rss_kib(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def rss_bytes(plane: ControlPlane) -> int:
    """Return the summed resident set size (VmRSS) of the plane's processes, in bytes.

    Args:
        plane: A started control plane.

    Returns:
        Bytes; 0 when nothing runs.
    """
    return _rss_kib(plane.pids.values()) * 1024
