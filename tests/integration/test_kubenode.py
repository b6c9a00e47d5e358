"""A real node (containerd, kubelet, kube-proxy, CNI bridge) on a fresh control plane.

One ControlPlane + LocalRegistry + KubeNode for the whole module: the Node becomes Ready on
its own address, a pod pulls a static Go server from the local registry over plain http and
answers through a ClusterIP Service from the host, ``kubectl logs``/``exec`` work, a pod asking
for more GPUs than advertised stays Pending, and stopping the node leaves the host as it was.
In the cluster: a pod reaches the API server through the ``kubernetes`` Service with its
ServiceAccount token, resolves Services by name through CoreDNS (and nothing outside
``cluster.local``), and its forwarded packets can leave only by the node's bridge.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client, config

from modelrelease.adapters.oci_registry import RegistryClient
from modelrelease.domain.reference import ImageRef
from modelrelease.errors import StackError
from modelrelease.settings import RegistryConfig
from modelrelease_localstack.controlplane import ControlPlane, kube_assets_dir
from modelrelease_localstack.kubenode import GPU_RESOURCE, KubeNode
from modelrelease_localstack.kubenode import hostchanges as hc
from modelrelease_localstack.kubenode.hostlock import other_nodes
from modelrelease_localstack.kubenode.kubelet import CLUSTER_DNS
from modelrelease_localstack.kubenode.static_image import SCRATCH, build_static_image
from modelrelease_localstack.registry import LocalRegistry

pytestmark = [pytest.mark.integration, pytest.mark.own_node]  # a node of its own: runs first

ECHO_SERVER = """\
package main

import (
\t"crypto/tls"
\t"crypto/x509"
\t"fmt"
\t"io"
\t"net"
\t"net/http"
\t"os"
\t"strings"
\t"time"
)

const sa = "/var/run/secrets/kubernetes.io/serviceaccount"

// get URL: print "STATUS BODY"; https URLs carry the pod's ServiceAccount token and trust its CA.
func get(url string) int {
\ttransport := &http.Transport{Proxy: nil}
\treq, _ := http.NewRequest("GET", url, nil)
\tif strings.HasPrefix(url, "https://") {
\t\tca, err := os.ReadFile(sa + "/ca.crt")
\t\tif err != nil {
\t\t\tfmt.Println("error:", err)
\t\t\treturn 1
\t\t}
\t\tpool := x509.NewCertPool()
\t\tpool.AppendCertsFromPEM(ca)
\t\ttransport.TLSClientConfig = &tls.Config{RootCAs: pool}
\t\ttoken, _ := os.ReadFile(sa + "/token")
\t\treq.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
\t}
\tresp, err := (&http.Client{Transport: transport, Timeout: 10 * time.Second}).Do(req)
\tif err != nil {
\t\tfmt.Println("error:", err)
\t\treturn 1
\t}
\tbody, _ := io.ReadAll(resp.Body)
\tfmt.Printf("%d %s\\n", resp.StatusCode, body)
\treturn 0
}

// lookup NAME: print its addresses (the pod's resolv.conf: cluster DNS), or the error.
func lookup(name string) int {
\taddrs, err := net.LookupHost(name)
\tif err != nil {
\t\tfmt.Println("error:", err)
\t\treturn 1
\t}
\tfmt.Println(strings.Join(addrs, " "))
\treturn 0
}

func main() {
\tif len(os.Args) > 1 && os.Args[1] == "echo" {
\t\tfmt.Println(strings.Join(os.Args[2:], " "))
\t\treturn
\t}
\tif len(os.Args) > 2 && os.Args[1] == "get" {
\t\tos.Exit(get(os.Args[2]))
\t}
\tif len(os.Args) > 2 && os.Args[1] == "lookup" {
\t\tos.Exit(lookup(os.Args[2]))
\t}
\thost, _ := os.Hostname()
\thttp.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
\t\tfmt.Fprintf(w, "hello from %s\\n", host)
\t})
\tfmt.Println("listening on :8080 as", host)
\tif err := http.ListenAndServe(":8080", nil); err != nil {
\t\tfmt.Fprintln(os.Stderr, err)
\t\tos.Exit(1)
\t}
}
"""

HOST_DIRS = ("/var/lib", "/var/log", "/run", "/opt", "/etc")
TOOL_STATE = {"/run/mount", "/run/xtables.lock"}
"""The host's own tools' state, made on their first use on a new machine (util-linux's
``utab`` when ``mount`` first runs, iptables' lock): not a change of the node's."""
SYSCTLS_AT_START = tuple(hc.read_sysctls())
"""The watched sysctls this kernel had before any node ran here: one that appears later (a
netfilter part registering on first use) has no earlier value to restore."""
HOST_WAIT_S = 1800.0
"""One node per host: wait while another session's node runs (see kubenode.hostlock)."""


@dataclass(frozen=True)
class Running:
    plane: ControlPlane
    registry: LocalRegistry
    node: KubeNode
    image: str
    before: dict[str, Any]
    core: client.CoreV1Api
    kubectl: list[str]


# -- what the host looks like ----------------------------------------------------------------
#
# Other things may run on this host at the same time (other tests' network namespaces ``mr*``
# and veths ``mv*``, their containerd under /tmp). What they own is left out, so a difference
# can only be this node's.

FOREIGN_PREFIXES = ("mr", "mv")


def _run(*argv: str) -> str:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False).stdout


def _node_processes(ours: Path) -> set[str]:
    """The node's processes: naming its work dir, in a kubepods cgroup, or a kubelet/proxy."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            exe = Path(os.readlink(entry / "exe").removesuffix(" (deleted)")).name
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            cgroups = (entry / "cgroup").read_text()
            if (str(ours) in cmdline or "/kubepods" in cgroups
                    or exe in ("kubelet", "kube-proxy")):
                found.add(f"{entry.name} {exe}")
    return found


def _chain_names() -> set[str]:
    names = {f"{tool} {table} {chain}" for tool, table, chain in hc.iptables_chains()}
    table = ""
    for line in _run("nft", "list", "ruleset").splitlines():
        words = line.split()
        if words[:1] == ["table"]:
            table = " ".join(words[1:3])
            names.add(f"nft {table}")
        elif words[:1] == ["chain"]:
            names.add(f"nft {table} {words[1]}")
    return names


def _links() -> set[str]:
    names = {line.split(":")[1].strip().split("@")[0]
             for line in _run("ip", "-o", "link", "show").splitlines()}
    return {n for n in names if not n.startswith(FOREIGN_PREFIXES)}


def host_state(ours: Path) -> dict[str, Any]:
    """Everything a node may change on the host (``ours``: the node's work dir)."""

    def mine(point: str) -> bool:
        if point.startswith(str(ours)):
            return True
        return not point.startswith("/tmp/") and not point.startswith(
            tuple(f"/run/netns/{p}" for p in FOREIGN_PREFIXES))

    foreign_links = {line.split(":")[1].strip().split("@")[0]
                     for line in _run("ip", "-o", "link", "show").splitlines()} - _links()
    return {
        "processes": _node_processes(ours),
        "mounts": {p for p in hc.mount_points() if mine(p)},
        "cgroups": set(hc.kubepods_cgroups()),
        "netns": {line.split()[0] for line in _run("ip", "netns", "list").splitlines()
                  if not line.startswith(FOREIGN_PREFIXES)},
        "links": _links(),
        "routes": {r for r in _run("ip", "route", "show", "table", "all").splitlines()
                   if not any(f"dev {link}" in r for link in foreign_links)},
        "chains": _chain_names(),
        "sysctls": hc.read_sysctls(SYSCTLS_AT_START),
        # the node's own directories, and what else appeared at the top of the host's dirs
        # (containerd's and CNI's shared dirs may be another containerd's: see hostchanges)
        "dirs": ({str(p) for d in HOST_DIRS for p in Path(d).iterdir()}
                 - set(hc.SHARED_DIRS) - TOOL_STATE)
                | {d for d in hc.OWN_DIRS if os.path.lexists(d)},
    }


# -- fixtures --------------------------------------------------------------------------------

def _build_echo(workdir: Path) -> Path:
    go = shutil.which("go") or "/usr/local/go/bin/go"
    src = workdir / "echo-src"
    src.mkdir(parents=True)
    (src / "main.go").write_text(ECHO_SERVER)
    (src / "go.mod").write_text("module modelrelease.local/echo\n\ngo 1.26.0\n")
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod -buildvcs=false"}
    out = workdir / "echo-server"
    subprocess.run([go, "build", "-trimpath", "-ldflags=-s -w", "-o", str(out), "."],
                   cwd=src, env=env, check=True, capture_output=True)
    return out


def _push_echo(registry: LocalRegistry, workdir: Path) -> str:
    image = build_static_image(_build_echo(workdir), "echo-server", workdir / "image")
    target = ImageRef.parse(f"{registry.host}/kubenode/echo:v1")
    with RegistryClient(RegistryConfig()) as registry_client:
        digest, _ = registry_client.push_image(
            target, target, SCRATCH, [(image.layer.descriptor, image.layer_path)],
            image.config, image.manifest, ["v1"])
    return f"{registry.host}/kubenode/echo@{digest}"


@dataclass(frozen=True)
class Plane:
    plane: ControlPlane
    registry: LocalRegistry
    image: str
    root: Path
    before: dict[str, Any]


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    """A fresh control plane and registry holding the echo image; the host state before."""
    root = tmp_path_factory.mktemp("kubenode")
    # another session's node would make "before" its state, not the host's
    eventually(lambda: not other_nodes(root / "node"), HOST_WAIT_S, "no other node on this host")
    before = host_state(root / "node")
    registry = LocalRegistry(root / "registry")
    control = ControlPlane(root / "plane")
    registry.start()
    try:
        image = _push_echo(registry, root)
        control.start()
        yield Plane(control, registry, image, root, before)
    finally:
        try:
            control.stop()
        finally:
            registry.stop()


@pytest.fixture(scope="module")
def running(plane: Plane) -> Iterator[Running]:
    """One node (one GPU advertised) shared by the module's tests."""
    node = KubeNode(plane.root / "node", plane.plane, name=f"kn-{uuid.uuid4().hex[:5]}",
                    gpus=1, registries=[plane.registry.host],
                    host_ports={"registry": int(plane.registry.host.rsplit(":", 1)[1])})
    try:
        node.start(host_wait=HOST_WAIT_S)
        api_client = config.new_client_from_config(config_file=str(plane.plane.kubeconfig))
        kubectl = str(kube_assets_dir() / "kubectl")
        if not os.access(kubectl, os.X_OK):
            kubectl = shutil.which("kubectl") or "kubectl"
        yield Running(plane.plane, plane.registry, node, plane.image, plane.before,
                      client.CoreV1Api(api_client),
                      [kubectl, "--kubeconfig", str(plane.plane.kubeconfig)])
        api_client.close()
    finally:
        node.stop()


def eventually(fn: Callable[[], Any], timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < end:
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last error
            value, last = None, exc
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last})")


@pytest.fixture
def ns(running: Running) -> Iterator[str]:
    name = f"kn-{uuid.uuid4().hex[:6]}"
    running.core.create_namespace({"metadata": {"name": name, "labels": {"created-by": "tests"}}})
    yield name
    with contextlib.suppress(client.ApiException):
        running.core.delete_namespace(name)


def _pod(name: str, image: str, gpus: int = 0) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "echo", "image": image, "ports": [{"containerPort": 8080, "name": "http"}],
        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
    }
    if gpus:
        container["resources"] = {"limits": {GPU_RESOURCE: str(gpus)}}
    return {"metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": [container], "terminationGracePeriodSeconds": 1}}


def _ready(core: client.CoreV1Api, ns: str, name: str) -> client.V1Pod | None:
    pod = core.read_namespaced_pod(name, ns)
    conditions = {c.type: c.status for c in pod.status.conditions or []}
    return pod if conditions.get("Ready") == "True" else None


@pytest.fixture(scope="module")
def echo(running: Running) -> Iterator[tuple[str, str, float]]:
    """One echo pod and its ClusterIP Service; (namespace, pod, seconds create -> Ready)."""
    name = f"kn-echo-{uuid.uuid4().hex[:6]}"
    core = running.core
    core.create_namespace({"metadata": {"name": name, "labels": {"created-by": "tests"}}})
    began = time.monotonic()
    core.create_namespaced_pod(name, _pod("echo", running.image))
    core.create_namespaced_service(name, {
        "metadata": {"name": "echo"},
        "spec": {"selector": {"app": "echo"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
    eventually(lambda: _ready(core, name, "echo"), 90, "pod echo Ready")
    yield name, "echo", time.monotonic() - began
    with contextlib.suppress(client.ApiException):
        core.delete_namespace(name)


# -- tests -----------------------------------------------------------------------------------

# -- a node that cannot start (these run first: before the module's node exists) --------------

def test_a_missing_binary_fails_before_anything_starts(plane: Plane, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                 "kube-proxy", "pause"):
        (assets / name).symlink_to(kube_assets_dir() / name)
    monkeypatch.setenv("KUBE_ASSETS", str(assets))
    before = host_state(tmp_path)
    with pytest.raises(StackError, match=r"kubelet missing.*run `scripts/kube-assets`"):
        KubeNode(tmp_path / "node", plane.plane, name="kn-no-kubelet").start()
    assert host_state(tmp_path) == before


def test_a_kubelet_that_cannot_listen_names_itself_and_leaves_nothing(
        plane: Plane, tmp_path: Path) -> None:
    before = host_state(tmp_path)
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("0.0.0.0", 0))  # the kubelet binds the node's address: the port is taken
    holder.listen()
    try:
        node = KubeNode(tmp_path / "node", plane.plane, name="kn-port-taken",
                        kubelet_port=holder.getsockname()[1])
        with pytest.raises(StackError) as failed:
            node.start(timeout=90, host_wait=HOST_WAIT_S)
    finally:
        holder.close()
    message = str(failed.value)
    print(message)
    assert message.startswith("start kubelet of node kn-port-taken:"), message
    assert "address already in use" in message
    assert "fix: another process holds that address" in message
    assert host_state(tmp_path) == before


def test_a_work_dir_too_long_for_unix_sockets_is_refused_before_anything_starts(
        plane: Plane, tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 70)
    with pytest.raises(StackError, match=r"too long for the kubelet's unix sockets .* Linux "
                                         r"allows 107.*dev up --root /tmp/mr"):
        KubeNode(deep / "node", plane.plane, name="kn-deep").start()
    assert not (deep / "node" / "logs").exists()  # refused before any directory was made


def test_dns_without_the_api_relay_is_refused(plane: Plane, tmp_path: Path) -> None:
    with pytest.raises(StackError, match="dns=True needs api_relay=True"):
        KubeNode(tmp_path / "node", plane.plane, api_relay=False)


def test_node_is_ready_on_its_own_address(running: Running) -> None:
    node = running.core.read_node(running.node.name)
    conditions = {c.type: c.status for c in node.status.conditions}
    addresses = {a.type: a.address for a in node.status.addresses}
    assert conditions["Ready"] == "True"
    assert addresses["InternalIP"] == running.node.node_ip
    assert not ipaddress.ip_address(running.node.node_ip).is_loopback
    assert ipaddress.ip_address(running.node.node_ip) in ipaddress.ip_network(
        running.node.pod_cidr)
    assert node.status.node_info.kubelet_version == "v1.36.3"
    assert node.status.node_info.container_runtime_version.startswith("containerd://1.6")
    assert running.node.ready_seconds is not None and running.node.ready_seconds < 120
    print(f"node Ready in {running.node.ready_seconds:.1f}s")


def test_a_second_node_on_this_host_is_refused(running: Running, tmp_path: Path) -> None:
    kubelet = running.node.pids["kubelet"]
    with pytest.raises(StackError, match=rf"another node runs on this host: .*kubelet pid "
                                         rf"{kubelet} .*fix: stop it"):
        KubeNode(tmp_path / "node", running.plane, name="kn-second").start(host_wait=0)
    assert not (tmp_path / "node").exists()
    assert running.node.pids["kubelet"] == kubelet


def test_pod_from_local_registry_answers_through_its_cluster_ip(
        running: Running, echo: tuple[str, str, float]) -> None:
    ns, name, seconds = echo
    pod = running.core.read_namespaced_pod(name, ns)
    assert pod.spec.node_name == running.node.name
    assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(running.node.pod_cidr)
    assert pod.status.container_statuses[0].image_id.endswith(running.image.split("@")[1])
    cluster_ip = running.core.read_namespaced_service("echo", ns).spec.cluster_ip

    def answer() -> str | None:
        response = httpx.get(f"http://{cluster_ip}/", timeout=2, trust_env=False)
        return response.text if response.status_code == 200 else None

    assert eventually(answer, 30, f"http://{cluster_ip}/ answering") == "hello from echo\n"
    direct = httpx.get(f"http://{pod.status.pod_ip}:8080/", timeout=5, trust_env=False)
    assert direct.text == "hello from echo\n"
    print(f"pod create -> Ready (pull from local registry): {seconds:.1f}s")


def test_the_running_node_changes_the_host(running: Running,
                                           echo: tuple[str, str, float]) -> None:
    """So that 'nothing left behind' below is not vacuous."""
    during = host_state(running.node.workdir)
    changed = {aspect for aspect in during if during[aspect] != running.before[aspect]}
    assert {"processes", "mounts", "cgroups", "links", "routes", "chains", "sysctls",
            "dirs"} <= changed
    assert "iptables filter KUBE-FIREWALL" in during["chains"]
    assert "iptables nat KUBE-SERVICES" in during["chains"]


@pytest.mark.parametrize(("args", "expected"), [
    pytest.param(["logs", "echo"], "listening on :8080 as echo", id="logs"),
    pytest.param(["exec", "echo", "--", "/echo-server", "echo", "hi", "there"], "hi there",
                 id="exec"),
])
def test_kubectl_reaches_the_kubelet(running: Running, echo: tuple[str, str, float],
                                     args: list[str], expected: str) -> None:
    ns = echo[0]
    result = subprocess.run([*running.kubectl, "-n", ns, *args], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout


def test_kubectl_port_forward_reaches_the_pod(running: Running,
                                             echo: tuple[str, str, float]) -> None:
    forward = subprocess.Popen([*running.kubectl, "-n", echo[0], "port-forward",
                                "--address=127.0.0.1", "pod/echo", ":8080"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()  # Forwarding from 127.0.0.1:PORT -> 8080
        failed = forward.stderr.read() if forward.stderr and forward.poll() else ""
        assert "-> 8080" in line, (line, failed)
        port = int(line.split("127.0.0.1:")[1].split()[0])
        response = httpx.get(f"http://127.0.0.1:{port}/", timeout=10, trust_env=False)
        assert response.text == "hello from echo\n"
    finally:
        forward.terminate()
        forward.wait(10)


@pytest.mark.parametrize("component", ["containerd", "kubelet", "kube-proxy"])
def test_a_component_restart_keeps_the_pod_serving(running: Running,
                                                   echo: tuple[str, str, float],
                                                   component: str) -> None:
    cluster_ip = running.core.read_namespaced_service("echo", echo[0]).spec.cluster_ip
    results: list[bool] = []
    done = threading.Event()

    def call() -> None:
        with httpx.Client(timeout=1, trust_env=False) as http:
            while not done.is_set():
                try:
                    results.append(http.get(f"http://{cluster_ip}/").status_code == 200)
                except httpx.HTTPError:
                    results.append(False)
                time.sleep(0.02)

    caller = threading.Thread(target=call)
    caller.start()
    try:
        time.sleep(0.3)
        old = running.node.pids[component]
        running.node.stop_component(component)
        new = running.node.start_component(component)
        time.sleep(2)
    finally:
        done.set()
        caller.join()
    assert new != old
    assert all(results[-10:]), "the pod does not answer after the restart"
    print(f"{component} restart: {results.count(False)} of {len(results)} requests failed")


def test_gpus_are_advertised_and_a_bigger_request_stays_pending(running: Running,
                                                               ns: str) -> None:
    node = running.core.read_node(running.node.name)
    assert node.status.capacity[GPU_RESOURCE] == "1"
    assert node.status.allocatable[GPU_RESOURCE] == "1"
    running.core.create_namespaced_pod(ns, _pod("two-gpus", running.image, gpus=2))
    running.core.create_namespaced_pod(ns, _pod("one-gpu", running.image, gpus=1))

    def unschedulable() -> str | None:
        pod = running.core.read_namespaced_pod("two-gpus", ns)
        for c in pod.status.conditions or []:
            if c.type == "PodScheduled" and c.status == "False":
                return str(c.message)
        return None

    message = eventually(unschedulable, 30, "pod two-gpus unschedulable")
    assert f"Insufficient {GPU_RESOURCE}" in message
    eventually(lambda: _ready(running.core, ns, "one-gpu"), 60, "pod one-gpu Ready")
    assert running.core.read_namespaced_pod("two-gpus", ns).status.phase == "Pending"


def _in_pod(running: Running, ns: str, *args: str) -> str:
    result = subprocess.run([*running.kubectl, "-n", ns, "exec", "echo", "--",
                             "/echo-server", *args], capture_output=True, text=True,
                            timeout=60, check=False)
    return result.stdout.strip() or result.stderr.strip()


def test_forwarded_pod_traffic_can_leave_only_by_the_bridge(running: Running) -> None:
    """The guard is a rule, checked as a rule: nothing is sent outside the host to prove it."""
    guard = running.node.egress_guard
    bridge = running.node.network.bridge if running.node.network else ""
    rules = guard.rules_present()
    assert len(rules) == 1, rules
    assert f"-s {running.node.pod_cidr}" in rules[0]
    assert f"! -o {bridge}" in rules[0]
    assert rules[0].endswith("-j DROP")
    forward = [line for line in _run("iptables", "-t", "mangle", "-S", "FORWARD").splitlines()
               if line.startswith("-A FORWARD")]
    assert forward[0] == rules[0], "the guard is not the first rule of mangle FORWARD"
    assert hc.read_sysctls(["net.ipv4.ip_forward"]) == {"net.ipv4.ip_forward": "1"}


def test_a_pod_reaches_the_api_server_through_the_kubernetes_service(
        running: Running, echo: tuple[str, str, float]) -> None:
    address, port = running.node.relay_address
    assert address == running.node.node_ip
    slices = client.DiscoveryV1Api(running.core.api_client).read_namespaced_endpoint_slice(
        "kubernetes", "default")
    assert [a for e in slices.endpoints for a in e.addresses] == [address]
    assert [p.port for p in slices.ports] == [port]
    for url in ("https://10.96.0.1/version", "https://kubernetes.default.svc/version"):

        def version(url: str = url) -> str | None:
            out = _in_pod(running, echo[0], "get", url)
            return out if out.startswith("200 ") else None

        answer = eventually(version, 30, f"{url} from the pod")
        assert '"gitVersion": "v1.36.3"' in answer, answer


def test_a_pod_reaches_a_host_service_on_loopback_through_the_nodes_relay(
        running: Running, echo: tuple[str, str, float]) -> None:
    """The registry listens on 127.0.0.1 only; pods reach it at the node's relay address."""
    address = running.node.host_address("registry")
    assert address.rsplit(":", 1)[0] == running.node.node_ip
    assert running.node.host_addresses == {"registry": address}

    def catalog() -> str | None:
        out = _in_pod(running, echo[0], "get", f"http://{address}/v2/")
        return out if out.startswith("200 ") else None

    eventually(catalog, 30, f"the registry's /v2/ at {address} from the pod")
    with pytest.raises(StackError) as unknown:
        running.node.host_address("prefect")
    assert "not one of host_ports (registry)" in str(unknown.value)


def test_host_ports_without_the_api_relay_are_refused(plane: Plane, tmp_path: Path) -> None:
    with pytest.raises(StackError, match="host_ports needs api_relay=True"):
        KubeNode(tmp_path / "node", plane.plane, api_relay=False, dns=False,
                 host_ports={"registry": 5000})


def test_a_registry_that_is_not_a_host_port_is_refused(plane: Plane, tmp_path: Path) -> None:
    with pytest.raises(StackError) as refused:
        KubeNode(tmp_path / "node", plane.plane, host_ports={"registry": 5000},
                 registry_host_ports=["mlflow"])
    assert "registry_host_ports ['mlflow'] are not host_ports (registry)" in str(refused.value)


def _dns_query(server: str, name: str) -> tuple[int, list[str]]:
    """One A query over UDP; (rcode, IPv4 answers)."""
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split("."))
    packet = struct.pack(">HHHHHH", 0x4D52, 0x0100, 1, 0, 0, 0) + question + b"\0\0\1\0\1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(packet, (server, 53))
        reply = sock.recv(4096)
    rcode, count = reply[3] & 0x0F, struct.unpack(">H", reply[6:8])[0]
    offset, answers = len(packet), []
    for _ in range(count):
        offset += 2 if reply[offset] & 0xC0 == 0xC0 else reply.index(b"\0", offset) + 1 - offset
        rtype, _, _, length = struct.unpack(">HHIH", reply[offset:offset + 10])
        offset += 10
        if rtype == 1:
            answers.append(socket.inet_ntoa(reply[offset:offset + length]))
        offset += length
    return rcode, answers


def test_cluster_dns_answers_cluster_names_and_refuses_the_rest(running: Running) -> None:
    dns = running.core.read_namespaced_service("kube-dns", "kube-system")
    assert dns.spec.cluster_ip == CLUSTER_DNS
    assert _dns_query(CLUSTER_DNS, "kubernetes.default.svc.cluster.local") == (0, ["10.96.0.1"])
    assert _dns_query(CLUSTER_DNS, "kube-dns.kube-system.svc.cluster.local") == (
        0, [CLUSTER_DNS])
    assert _dns_query(CLUSTER_DNS, "nothing-here.default.svc.cluster.local")[0] == 3  # NXDOMAIN
    assert _dns_query(CLUSTER_DNS, "example.com")[0] == 5  # REFUSED: no upstream at all
    print(f"node start {running.node.ready_seconds:.1f}s, of which cluster DNS "
          f"{running.node.dns_seconds:.1f}s")


def test_a_pod_calls_a_service_by_name(running: Running,
                                       echo: tuple[str, str, float]) -> None:
    ns = echo[0]
    cluster_ip = running.core.read_namespaced_service("echo", ns).spec.cluster_ip
    assert _in_pod(running, ns, "lookup", "kubernetes.default.svc.cluster.local") == "10.96.0.1"
    assert _in_pod(running, ns, "lookup", f"echo.{ns}.svc.cluster.local") == cluster_ip
    # (plain "echo" is the pod's own hostname: /etc/hosts answers it before DNS)
    assert _in_pod(running, ns, "get", f"http://echo.{ns}/") == "200 hello from echo"
    assert _in_pod(running, ns, "get", f"http://echo.{ns}.svc/") == "200 hello from echo"
    assert _in_pod(running, ns, "lookup", "example.com").startswith("error:")


@pytest.fixture(scope="module")
def stopped(running: Running) -> tuple[dict[str, Any], dict[str, Any], float]:
    began = time.monotonic()
    running.node.stop()
    seconds = time.monotonic() - began
    after = host_state(running.node.workdir)
    return running.before, after, seconds


@pytest.mark.parametrize("aspect", ["processes", "mounts", "cgroups", "netns", "links",
                                    "routes", "chains", "sysctls", "dirs"])
def test_stopping_the_node_leaves_nothing_behind(
        stopped: tuple[dict[str, Any], dict[str, Any], float], aspect: str) -> None:
    before, after, seconds = stopped
    if isinstance(before[aspect], set):
        assert sorted(after[aspect] - before[aspect]) == [], f"left behind: {aspect}"
        assert sorted(before[aspect] - after[aspect]) == [], f"removed: {aspect}"
    else:
        assert after[aspect] == before[aspect]
    assert seconds < 60


def test_the_egress_guard_and_cluster_objects_are_gone(
        running: Running, stopped: tuple[dict[str, Any], dict[str, Any], float]) -> None:
    assert running.node.egress_guard.rules_present() == []
    with pytest.raises(client.ApiException):
        running.core.read_namespaced_service("kube-dns", "kube-system")
    with pytest.raises(client.ApiException):
        client.DiscoveryV1Api(running.core.api_client).read_namespaced_endpoint_slice(
            "kubernetes", "default")


def test_the_node_is_gone_from_the_cluster(running: Running,
                                           stopped: tuple[dict[str, Any], dict[str, Any],
                                                          float]) -> None:
    names = [n.metadata.name for n in running.core.list_node().items]
    assert running.node.name not in names
    print(f"node stopped and host restored in {stopped[2]:.1f}s")
