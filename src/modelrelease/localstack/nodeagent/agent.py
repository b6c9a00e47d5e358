"""The node agent: registers a Node, keeps its Lease, and runs the pods bound to it.

Run as ``python -m modelrelease.localstack.nodeagent.agent --kubeconfig K ...`` (the
``LocalNode`` wrapper does). Each pod gets a worker thread: network namespace, image
pull by digest (unpacked once per layer), runc container, probes, restarts with
back-off, status; on deletion SIGTERM, grace period, SIGKILL, cleanup, and the final
delete that confirms it. On SIGTERM the agent stops every container and removes every
namespace, mount and its bridge.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from modelrelease.adapters.oci_registry import RegistryClient
from modelrelease.domain.image import LABEL_HOST_RUNTIME
from modelrelease.domain.reference import ImageRef
from modelrelease.errors import PipelineError, StackError
from modelrelease.localstack.images import ImageCache, compose
from modelrelease.localstack.nodeagent.network import PodNetwork
from modelrelease.localstack.nodeagent.podstatus import (
    ContainerState,
    PodState,
    backoff_seconds,
)
from modelrelease.localstack.nodeagent.probes import ProbeTiming, make_check
from modelrelease.localstack.nodeagent.runtime import ProcessSpec, Runc, merge_process, parse_user
from modelrelease.settings import PipelineSettings

log = logging.getLogger("modelrelease.node")
LEASE_SECONDS = 40
RENEW_EVERY = 10.0
COMPONENT = "modelrelease-node"


def now() -> datetime:
    """The current UTC time (the agent is I/O code; the pure parts take it as a parameter)."""
    return datetime.now(UTC)


class NodeAgent:
    """One node: its API clients, network, runtime, image cache and pod workers."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.name: str = args.node_name
        self.workdir = Path(args.workdir)
        self.capacity = {"cpu": args.cpu, "memory": args.memory, "pods": str(args.max_pods),
                         "nvidia.com/gpu": str(args.gpus), "ephemeral-storage": "100Gi"}
        self.backoff_initial = float(args.backoff_initial)
        self.api = config.new_client_from_config(config_file=args.kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.coord = client.CoordinationV1Api(self.api)
        self.network = PodNetwork(args.pod_cidr, args.tag)
        self.runc = Runc(self.workdir / "runc")
        settings = PipelineSettings()
        self.registry = RegistryClient(settings.registry)
        self.images = ImageCache(self.workdir / "images", self.registry)
        self._pull_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self.workers: dict[str, PodWorker] = {}
        self.stopping = threading.Event()

    # -- node ---------------------------------------------------------------------------

    def register(self) -> None:
        """Create (or re-create) the Node and report it Ready."""
        cidr = str(self.network.network)
        body = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.name, "labels": {
                "kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64", "modelrelease.io/local-node": "true"}},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        }
        try:
            existing = self.core.read_node(self.name)
            if existing.spec.pod_cidr != cidr:
                self.core.delete_node(self.name)
                time.sleep(0.5)
                self.core.create_node(body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.core.create_node(body)
        self.report_status()

    def report_status(self) -> None:
        """Patch the Node's status: capacity, conditions with a fresh heartbeat, addresses."""
        stamp = now().strftime("%Y-%m-%dT%H:%M:%SZ")

        def condition(kind: str, status: str, reason: str) -> dict[str, str]:
            return {"type": kind, "status": status, "reason": reason, "message": reason,
                    "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}

        status = {
            "capacity": self.capacity,
            "allocatable": self.capacity,
            "conditions": [
                condition("Ready", "True", "KubeletReady"),
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID"),
            ],
            "addresses": [{"type": "InternalIP", "address": str(self.network.gateway)},
                          {"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": self.name, "systemUUID": self.name, "bootID": self.name,
                "kernelVersion": platform.release(), "osImage": "modelrelease local node",
                "containerRuntimeVersion": "runc://1", "kubeletVersion": "v1.36.3",
                "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64",
            },
        }
        self.core.patch_node_status(self.name, {"status": status})

    def renew_lease(self) -> None:
        """Create or renew the Node's Lease in kube-node-lease."""
        renew = now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {"metadata": {"name": self.name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS,
                         "renewTime": renew}}
        try:
            self.coord.patch_namespaced_lease(self.name, "kube-node-lease", body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.coord.create_namespaced_lease("kube-node-lease", body)

    def _heartbeat(self) -> None:
        beats = 0
        while not self.stopping.wait(RENEW_EVERY):
            try:
                self.renew_lease()
                beats += 1
                if beats % 6 == 0:
                    self.report_status()
            except Exception as exc:  # noqa: BLE001 - keep beating through API hiccups
                log.warning("heartbeat failed: %s", exc)

    # -- pods ---------------------------------------------------------------------------

    def pull_lock(self, ref: str) -> threading.Lock:
        """One lock per image, so two pods never unpack the same layers at once."""
        with self._locks_guard:
            return self._pull_locks.setdefault(ref, threading.Lock())

    def observe(self, pod: dict[str, Any], kind: str) -> None:
        """React to one pod event."""
        meta = pod["metadata"]
        uid = meta["uid"]
        worker = self.workers.get(uid)
        if kind == "DELETED":
            if worker is not None:
                worker.request_stop(grace=0, confirm=False)
            return
        if meta.get("deletionTimestamp"):
            grace = meta.get("deletionGracePeriodSeconds")
            if grace is None:
                grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
            if worker is None:
                worker = PodWorker(self, pod, deleting=True)
                self.workers[uid] = worker
                worker.start()
            worker.request_stop(grace=float(grace), confirm=True)
            return
        if worker is None and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
            worker = PodWorker(self, pod)
            self.workers[uid] = worker
            worker.start()

    def watch_pods(self) -> None:
        """List then watch the pods bound to this node until stopped."""
        selector = f"spec.nodeName={self.name}"
        while not self.stopping.is_set():
            try:
                listed = self.core.list_pod_for_all_namespaces(field_selector=selector)
                seen = set()
                for item in listed.items:
                    pod = self.api.sanitize_for_serialization(item)
                    seen.add(pod["metadata"]["uid"])
                    self.observe(pod, "ADDED")
                for uid, worker in list(self.workers.items()):
                    if uid not in seen:
                        worker.request_stop(grace=0, confirm=False)
                stream = watch.Watch().stream(
                    self.core.list_pod_for_all_namespaces, field_selector=selector,
                    resource_version=listed.metadata.resource_version, timeout_seconds=30,
                    _request_timeout=45)
                for event in stream:
                    if self.stopping.is_set():
                        break
                    if event["type"] == "ERROR":
                        break
                    pod = self.api.sanitize_for_serialization(event["object"])
                    self.observe(pod, event["type"])
            except Exception as exc:  # noqa: BLE001 - API restarts: list again after a pause
                if not self.stopping.is_set():
                    log.warning("pod watch interrupted: %s; listing again", exc)
                    self.stopping.wait(1.0)
            for uid, worker in list(self.workers.items()):
                if not worker.is_alive():
                    del self.workers[uid]

    def run(self) -> None:
        """Set up, register, and serve until SIGTERM."""
        self.cleanup_leftovers()
        self.network.setup_bridge()
        self.register()
        self.renew_lease()
        threading.Thread(target=self._heartbeat, daemon=True, name="heartbeat").start()
        log.info("node %s ready: pod CIDR %s on bridge %s", self.name, self.network.network,
                 self.network.bridge)
        self.watch_pods()

    def cleanup_leftovers(self) -> None:
        """Remove containers and namespaces a crashed earlier agent left behind."""
        for cid in self.runc.containers():
            self.runc.delete(cid)
        self.network.teardown()
        shutil.rmtree(self.workdir / "pods", ignore_errors=True)

    def shutdown(self) -> None:
        """Stop every container (no grace beyond a few seconds) and remove what we made."""
        self.stopping.set()
        for worker in list(self.workers.values()):
            worker.request_stop(grace=5, confirm=False)
        for worker in list(self.workers.values()):
            worker.join(timeout=20)
        self.cleanup_leftovers()
        self.registry.close()


class PodWorker(threading.Thread):
    """Runs one pod from binding to deletion."""

    def __init__(self, agent: NodeAgent, pod: dict[str, Any], deleting: bool = False) -> None:
        meta = pod["metadata"]
        super().__init__(daemon=True, name=f"pod-{meta['namespace']}/{meta['name']}")
        self.agent = agent
        self.pod = pod
        self.namespace, self.pod_name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.key = self.uid.replace("-", "")[:8]
        self.cid = f"{agent.network.tag}-{self.key}"
        self.dir = agent.workdir / "pods" / self.uid
        spec = pod["spec"]
        self.container = spec["containers"][0]
        previous = {c["name"]: c.get("restartCount", 0)
                    for c in (pod.get("status") or {}).get("containerStatuses") or []}
        state = ContainerState(name=self.container["name"], image=self.container["image"],
                               restart_count=previous.get(self.container["name"], 0))
        self.state = PodState([state], restart_policy=spec.get("restartPolicy", "Always"),
                              host_ip=str(agent.network.gateway), start_time=now())
        known_ip = (pod.get("status") or {}).get("podIP")
        if known_ip and not deleting:  # the pod ran before this agent restarted: same IP
            agent.network.reserve(self.key, known_ip)
        self.stop_event = threading.Event()
        self.grace = 30.0
        self.confirm = False
        self.deleting = deleting
        self.proc: Any = None
        self.kill_reason = ""

    # -- API ------------------------------------------------------------------------------

    def publish(self) -> None:
        """Write the pod's status (quietly if the pod is gone)."""
        body = {"status": self.state.to_status(now())}
        try:
            self.agent.core.patch_namespaced_pod_status(self.pod_name, self.namespace, body)
        except ApiException as exc:
            if exc.status not in (404, 409):
                log.warning("status of %s/%s: %s %s", self.namespace, self.pod_name,
                            exc.reason, exc.body if exc.status == 422 else "")

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        """Record a Kubernetes Event on the pod."""
        stamp = now().strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "metadata": {"generateName": f"{self.pod_name}.", "namespace": self.namespace},
            "involvedObject": {"kind": "Pod", "namespace": self.namespace,
                               "name": self.pod_name, "uid": self.uid, "apiVersion": "v1"},
            "reason": reason, "message": message, "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT, "host": self.agent.name},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        }
        with contextlib.suppress(ApiException):
            self.agent.core.create_namespaced_event(self.namespace, body)

    def request_stop(self, grace: float, confirm: bool) -> None:
        """Stop the pod: SIGTERM, ``grace`` seconds, SIGKILL; ``confirm`` deletes the Pod."""
        self.grace = min(self.grace, grace) if self.stop_event.is_set() else grace
        self.confirm = self.confirm or confirm
        self.stop_event.set()

    # -- lifecycle ------------------------------------------------------------------------

    def run(self) -> None:
        """Network, image, container loop; teardown whatever happens."""
        container = self.state.containers[0]
        try:
            if not self.deleting:
                self.dir.mkdir(parents=True, exist_ok=True)
                self.publish()
                self.state.pod_ip = self.agent.network.attach(self.key)
                self.publish()
                spec = self._prepare(container)
                if spec is not None:
                    self._loop(container, spec)
        except Exception as exc:
            log.exception("pod %s/%s failed", self.namespace, self.pod_name)
            container.waiting("CreateContainerError", str(exc)[:500])
            self.publish()
            self.stop_event.wait()
        finally:
            self._teardown()

    def _prepare(self, container: ContainerState) -> ProcessSpec | None:
        ref_text = self.container["image"]
        failures = 0
        while not self.stop_event.is_set():
            try:
                ref = ImageRef.parse(ref_text)
                with self.agent.pull_lock(ref_text):
                    rootfs = self.dir / "rootfs"
                    image = self.agent.images.pull(ref)
                    if rootfs.exists():
                        shutil.rmtree(rootfs)
                    compose(image.layer_dirs, rootfs)
                break
            except PipelineError as exc:
                failures += 1
                container.waiting("ErrImagePull", exc.message)
                self.publish()
                self.event("Failed", f"Failed to pull image {ref_text}: {exc.message}", True)
                delay = backoff_seconds(failures, self.agent.backoff_initial)
                if self.stop_event.wait(min(1.0, delay)):
                    return None
                container.waiting("ImagePullBackOff",
                                  f"Back-off pulling image {ref_text}: {exc.message}")
                self.publish()
                if self.stop_event.wait(max(0.0, delay - 1.0)):
                    return None
        else:
            return None
        container.image_id = f"{ref.registry}/{ref.repository}@{image.ref.digest}"
        self.event("Pulled", f"Image {ref_text} unpacked")
        config_labels = (image.config.get("config") or {}).get("Labels") or {}
        binds = [p for p in json.loads(config_labels.get(LABEL_HOST_RUNTIME, "[]"))
                 if Path(p).exists()]
        argv, env, cwd = merge_process(image.config, self.container)
        security = {**(self.pod["spec"].get("securityContext") or {}),
                    **(self.container.get("securityContext") or {})}
        if security.get("runAsUser") is not None:
            uid = int(security["runAsUser"])
            gid = int(security.get("runAsGroup", uid))
        else:
            uid, gid = parse_user((image.config.get("config") or {}).get("User"),
                                  self.dir / "rootfs" / "etc" / "passwd")
        env.append(f"HOSTNAME={self.pod_name}")
        caps = security.get("capabilities") or {}
        spec = ProcessSpec(args=argv, env=env, cwd=cwd, uid=uid, gid=gid, binds=binds,
                           drop_capabilities=tuple(caps.get("drop") or ()),
                           add_capabilities=tuple(caps.get("add") or ()),
                           seccomp=(security.get("seccompProfile") or {}).get("type"))
        self.agent.runc.write_bundle(self.dir / "bundle", self.dir / "rootfs", spec,
                                     self.agent.network.netns(self.key), self.pod_name)
        return spec

    def _loop(self, container: ContainerState, spec: ProcessSpec) -> None:
        failures = 0
        while not self.stop_event.is_set():
            self.kill_reason = ""
            self.proc = self.agent.runc.run(self.cid, self.dir / "bundle",
                                            self.dir / "container.log")
            started = time.monotonic()
            container.running(now())
            self.publish()
            self.event("Started", f"Started container {container.name}")
            probes = threading.Event()
            threading.Thread(target=self._probe, args=(container, probes), daemon=True).start()
            while self.proc.poll() is None and not self.stop_event.wait(0.2):
                pass
            probes.set()
            if self.stop_event.is_set():
                return
            code = self.proc.returncode
            container.exited(code, now(), self.kill_reason)
            self.event("Died", f"Container {container.name} exited with {code}", code != 0)
            policy = self.state.restart_policy
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                self.publish()
                return
            failures = 1 if time.monotonic() - started > 600 else failures + 1
            delay = backoff_seconds(failures - 1, self.agent.backoff_initial)
            container.restart_count += 1
            if delay > 0:
                container.waiting("CrashLoopBackOff",
                                  f"back-off {delay:.0f}s restarting failed container="
                                  f"{container.name} pod={self.pod_name}")
                self.event("BackOff", f"Back-off {delay:.0f}s restarting failed container", True)
            self.publish()
            if self.stop_event.wait(delay):
                return

    def _probe(self, container: ContainerState, done: threading.Event) -> None:
        ports = self.container.get("ports") or []
        pod_ip = self.state.pod_ip or ""

        def run_exec(argv: Sequence[str], timeout: float) -> int:
            return self.agent.runc.exec(self.cid, argv, timeout)

        startup = self.container.get("startupProbe")
        readiness = self.container.get("readinessProbe")
        liveness = self.container.get("livenessProbe")
        if readiness is None:
            container.ready = True
            self.publish()
        checks = []
        for kind, spec in (("startup", startup), ("readiness", readiness),
                           ("liveness", liveness)):
            if spec:
                checks.append((kind, ProbeTiming.from_spec(spec),
                               make_check(spec, pod_ip, ports, run_exec)))
        if not checks:
            return
        start = time.monotonic()
        next_due = {kind: start + timing.initial_delay for kind, timing, _ in checks}
        passes = {kind: 0 for kind, _, _ in checks}
        fails = {kind: 0 for kind, _, _ in checks}
        started = startup is None  # the kubelet's rule: no other probe runs before startup
        while not done.is_set():
            current = time.monotonic()
            for kind, timing, check in checks:
                if current < next_due[kind] or (kind == "startup") == started:
                    continue
                next_due[kind] = current + timing.period
                ok = check()
                passes[kind], fails[kind] = (passes[kind] + 1, 0) if ok else (0, fails[kind] + 1)
                if kind == "startup":
                    if passes[kind] >= timing.success_threshold:
                        started = True
                        for other, other_timing, _ in checks:
                            next_due[other] = current + other_timing.initial_delay
                    elif fails[kind] >= timing.failure_threshold:
                        self.kill_reason = "Startup probe failed"
                        self.event("Unhealthy", "Startup probe failed; restarting", True)
                        self.agent.runc.kill(self.cid, signal.SIGKILL)
                        return
                elif kind == "readiness":
                    ready = container.ready
                    if passes[kind] >= timing.success_threshold:
                        ready = True
                    elif fails[kind] >= timing.failure_threshold:
                        ready = False
                    if ready != container.ready and not done.is_set():
                        container.ready = ready
                        self.publish()
                elif fails[kind] >= timing.failure_threshold:
                    self.kill_reason = "Liveness probe failed"
                    self.event("Unhealthy", "Liveness probe failed; restarting", True)
                    self.agent.runc.kill(self.cid, signal.SIGKILL)
                    return
            done.wait(0.1)

    def _pre_stop(self) -> None:
        """Run the container's preStop hook (sleep or exec) within the grace period.

        A short preStop sleep lets EndpointSlices drop the terminating pod before its
        server stops, so no request is routed to a closed port.
        """
        hook = (self.container.get("lifecycle") or {}).get("preStop") or {}
        started = time.monotonic()
        if "sleep" in hook:
            time.sleep(min(float(hook["sleep"].get("seconds", 0)), max(self.grace, 0.0)))
        elif "exec" in hook:
            self.agent.runc.exec(self.cid, list(hook["exec"].get("command") or []),
                                 timeout=max(self.grace, 0.1))
        self.grace = max(0.1, self.grace - (time.monotonic() - started))

    def _teardown(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            self.event("Killing", f"Stopping container {self.container['name']}")
            self._pre_stop()
            self.agent.runc.kill(self.cid, signal.SIGTERM)
            try:
                proc.wait(timeout=max(self.grace, 0.1))
            except subprocess.TimeoutExpired:
                self.agent.runc.kill(self.cid, signal.SIGKILL)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.agent.runc.delete(self.cid)
        self.agent.network.detach(self.key)
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.confirm:
            try:
                self.agent.core.delete_namespaced_pod(
                    self.pod_name, self.namespace, grace_period_seconds=0,
                    body=client.V1DeleteOptions(grace_period_seconds=0,
                                                preconditions=client.V1Preconditions(uid=self.uid)))
            except ApiException as exc:
                if exc.status not in (404, 409):
                    log.warning("confirm deletion of %s/%s: %s", self.namespace, self.pod_name,
                                exc.reason)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the agent process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node-name", default="node-1")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--pod-cidr", required=True)
    parser.add_argument("--tag", required=True, help="short unique tag for names on this host")
    parser.add_argument("--gpus", type=int, default=0)
    parser.add_argument("--cpu", default="2")
    parser.add_argument("--memory", default="16Gi")
    parser.add_argument("--max-pods", type=int, default=110)
    parser.add_argument("--backoff-initial", type=float, default=10.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        stream=sys.stdout)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    agent = NodeAgent(args)
    signal.signal(signal.SIGTERM, lambda *_: agent.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: agent.stopping.set())
    runner = threading.Thread(target=agent.run, daemon=True, name="agent")
    runner.start()
    try:
        while runner.is_alive() and not agent.stopping.wait(0.5):
            pass
    finally:
        log.info("node %s shutting down", agent.name)
        agent.shutdown()
        log.info("node %s stopped", agent.name)
    if not agent.stopping.is_set():
        raise StackError("node agent stopped unexpectedly")


if __name__ == "__main__":
    main()
