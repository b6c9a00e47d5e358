"""Releases on a real node: ``Stack(node_kind="kubelet")`` with the self-contained serving base.

A whole stack of its own for this module (control plane, registry, a real node with
containerd, kubelet and kube-proxy, MLflow, Prefect, the mmdebstrap serving base): model
images built by the pipeline on that base are pulled by containerd and run by the kubelet;
the checks reach the pods through the Service's ClusterIP (the node routes the Service
CIDR, kube-proxy translates it), and the report says so; a client calling the endpoint's
ClusterIP loses nothing while a new version is canaried and promoted; ``kubectl logs``
shows the serving process; and stopping the stack leaves the host as it was.
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import yaml

from modelrelease.adapters.kube import KubeCluster
from modelrelease.adapters.pod_access import PodAccess
from modelrelease.adapters.probe import SteadyClient
from modelrelease.domain.pod_access import AccessMode
from modelrelease.localstack.controlplane import kube_assets_dir
from modelrelease.localstack.demo_model import register_iris_model
from modelrelease.localstack.registry import LocalRegistry
from modelrelease.localstack.stack import Stack
from modelrelease.release.driver import ReleaseResult
from modelrelease.settings import KubeConfig, RegistryConfig
from tests.e2e.helpers import IRIS_BODY, Endpoint, make_endpoint
from tests.faults.chaos import assert_promoted, report, timed, wait_phase
from tests.integration.test_kubenode import host_state
from tests.support import install_crd

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("real-node-stack")
    before = host_state(root / "node")
    stack = Stack(root, node_kind="kubelet", gpus=1, node_name="real-1", progress=print)
    stack.up()
    try:
        install_crd(stack.kubeconfig)
        yield stack, before
    finally:
        if stack.state is not None:
            stack.down()


@pytest.fixture(scope="module")
def endpoint(real: tuple[Stack, dict[str, Any]],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    stack, _ = real
    made = make_endpoint(stack, tmp_path_factory.mktemp("real-endpoint"),
                         steps=[{"weight": 50, "hold": "6s"}],
                         checks={"latency": {"p99Ms": 10000, "maxRegression": 1.0},
                                 "maxErrorRate": 0.01, "minRequests": 100})
    yield made
    if stack.state is not None:  # the last test stops the stack, namespace and all
        made.core.delete_namespace(made.namespace)


def _cluster_ip_client(stack: Stack, made: Endpoint) -> tuple[SteadyClient, KubeCluster]:
    """A client calling the endpoint's Service on its ClusterIP, as users in the cluster do."""
    cluster = KubeCluster(KubeConfig(kubeconfig=stack.kubeconfig))
    access = PodAccess(cluster, AccessMode.AUTO, made.namespace, made.name)
    url = access.url(made.namespace, made.name, "invocations")
    assert url.startswith("http://10.96."), url
    return SteadyClient(access, url, IRIS_BODY), cluster


def test_a_release_on_the_real_node_reaches_pods_through_the_cluster_ip(
        real: tuple[Stack, dict[str, Any]], endpoint: Endpoint) -> None:
    stack, _ = real
    made = endpoint
    tracking = str(made.settings.mlflow.tracking_uri)
    register_iris_model(tracking, made.model, alias="champion", c=1.0)
    first = made.release()
    assert first.outcome == "promoted", first.reason
    assert "- checks reached the pods through the Service's ClusterIP and pod IPs" in \
        first.report, first.report
    assert "not the default route" in first.report
    pods = made.core.list_namespaced_pod(made.namespace).items
    (pod,) = [p for p in pods if p.metadata.labels.get("track") == "primary"
              and p.metadata.deletion_timestamp is None]
    status = pod.status.container_statuses[0]
    assert status.ready and first.image.split("@")[1] in status.image_id, status
    assert pod.spec.node_name == "real-1"
    logs = subprocess.run([str(kube_assets_dir() / "kubectl"), "--kubeconfig",
                           str(stack.kubeconfig), "-n", made.namespace, "logs",
                           pod.metadata.name], capture_output=True, text=True, timeout=60)
    assert logs.returncode == 0, logs.stderr
    assert "modelrelease serving: loaded /opt/ml/model" in logs.stdout, logs.stdout
    assert "modelrelease serving: listening on 0.0.0.0:8080" in logs.stdout, logs.stdout

    register_iris_model(tracking, made.model, alias="champion", c=0.3)
    background, cluster = _cluster_ip_client(stack, made)
    with background:
        second = made.release()
    cluster.close()
    assert second.outcome == "promoted", second.reason
    assert background.failed == [] and background.ok > 50, (background.ok,
                                                           background.failed[:5])
    print(f"real node: v1 in {first.seconds:.1f}s, v2 in {second.seconds:.1f}s "
          f"(hold {second.hold_seconds:.1f}s), {background.ok} ClusterIP requests, 0 lost")


def test_an_image_the_kubelet_cannot_pull_rolls_back_with_the_kubelets_reason(
        real: tuple[Stack, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> None:
    """The endpoint moves to a private registry, but the cluster has no pull secret for it.

    The pipeline pushes with its own credentials; the real kubelet's pull is refused (401),
    the canary shows ErrImagePull / ImagePullBackOff and the release rolls back at once with
    the kubelet's words; the primary (from the open registry) keeps serving.
    """
    stack, _ = real
    made = make_endpoint(stack, tmp_path_factory.mktemp("pull-endpoint"),
                         steps=[{"weight": 50, "hold": "6s"}],
                         checks={"latency": {"p99Ms": 10000, "maxRegression": 1.0},
                                 "maxErrorRate": 0.01, "minRequests": 100})
    tracking = str(made.settings.mlflow.tracking_uri)
    try:
        register_iris_model(tracking, made.model, alias="champion", c=1.0)
        first = made.release()
        assert first.outcome == "promoted", first.reason
        with LocalRegistry(tmp_path_factory.mktemp("private-registry"),
                           users={"team": "pull-secret-missing"}) as private:
            document = yaml.safe_load(made.file.read_text())
            document["spec"]["image"]["repository"] = f"{private.host}/e2e/{made.name}"
            made.file.write_text(yaml.safe_dump(document))
            pushing = dataclasses.replace(made, settings=made.settings.model_copy(update={
                "registry": RegistryConfig(username="team", password="pull-secret-missing")}))
            register_iris_model(tracking, made.model, alias="champion", c=0.4)
            second = pushing.release()
        print(f"unpullable canary: {second.outcome} in {second.seconds:.1f}s: {second.reason}")
        assert second.outcome == "rolled_back", second.reason
        assert "ErrImagePull" in second.reason or "ImagePullBackOff" in second.reason, \
            second.reason
        assert private.host in second.reason or "401" in second.reason \
            or "nauthorized" in second.reason, second.reason
        assert (made.image("primary") or "").endswith(first.image.split("@")[1])
        assert made.image("canary") is None
        assert made.status()["primary"]["version"] == first.version
    finally:
        made.core.delete_namespace(made.namespace)


@pytest.mark.parametrize("part", ["kube-apiserver", "kubelet", "containerd"])
def test_a_restart_mid_release_loses_no_cluster_ip_request(
        real: tuple[Stack, dict[str, Any]], endpoint: Endpoint, part: str) -> None:
    """``part`` restarts while the canary rolls out; the release promotes, users lose nothing.

    Users' traffic goes to the ClusterIP (kube-proxy's rules, the pods themselves): an API
    server, kubelet or containerd restart does not touch it. The release's own calls are
    retried through the outage.
    """
    stack, _ = real
    tracking = str(endpoint.settings.mlflow.tracking_uri)
    version = str(register_iris_model(tracking, endpoint.model, alias="champion",
                                      c={"kube-apiserver": 0.5, "kubelet": 0.6,
                                         "containerd": 0.7}[part]))
    background, cluster = _cluster_ip_client(stack, endpoint)
    with background, ThreadPoolExecutor(1) as pool:
        future = pool.submit(endpoint.release)
        wait_phase(endpoint, {"Deploying"})
        with timed() as outage:
            stack.restart(part)
        result: ReleaseResult = future.result(timeout=300)
    cluster.close()
    report(f"{part} restart mid-release (real node, ClusterIP client)",
           result.outcome == "promoted", outage[0], len(background.failed),
           release_s=round(result.seconds, 1), ok_requests=background.ok)
    assert result.version == version
    assert_promoted(endpoint, result)
    assert background.failed == [] and background.ok > 20, (background.ok,
                                                           background.failed[:5])


def test_stopping_the_real_node_stack_leaves_the_host_as_it_was(
        real: tuple[Stack, dict[str, Any]]) -> None:
    stack, before = real
    stack.down()
    after = host_state(stack.root / "node")
    changed = {aspect: (sorted(after[aspect] - before[aspect]),
                        sorted(before[aspect] - after[aspect]))
               if isinstance(before[aspect], set) else (after[aspect], before[aspect])
               for aspect in before if after[aspect] != before[aspect]}
    assert changed == {}, changed
