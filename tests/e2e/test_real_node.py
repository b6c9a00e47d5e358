"""What the real node does for a release, seen from the node's side.

The session's stack runs a real node (containerd, kubelet, kube-proxy) and the mmdebstrap
serving base: model images built by the pipeline on that base are pulled by containerd
and run by the kubelet; the checks reach the pods through the Service's ClusterIP (the
node routes the Service CIDR, kube-proxy translates it), and the report says so;
``kubectl logs`` shows the serving process; and an image the kubelet cannot pull rolls
the release back with the kubelet's own reason. (Restarts of the node's parts mid-release
are in ``tests/faults/test_restarts.py``; the node leaving the host as it was, in
``tests/integration/test_kubenode.py``.)
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator

import pytest
import yaml

from modelrelease.settings import RegistryConfig
from modelrelease_localstack.controlplane import kube_assets_dir
from modelrelease_localstack.demo_model import register_iris_model
from modelrelease_localstack.registry import LocalRegistry
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import Endpoint, background_client, make_endpoint

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def endpoint(stack: Stack, crd: None,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    made = make_endpoint(stack, tmp_path_factory.mktemp("real-endpoint"),
                         steps=[{"weight": 50, "hold": "6s"}],
                         checks={"latency": {"p99Ms": 10000, "maxRegression": 1.0},
                                 "maxErrorRate": 0.01, "minRequests": 100})
    yield made
    made.core.delete_namespace(made.namespace)


def test_a_release_on_the_real_node_reaches_pods_through_the_cluster_ip(
        stack: Stack, endpoint: Endpoint) -> None:
    made = endpoint
    tracking = str(made.settings.mlflow.tracking_uri)
    register_iris_model(tracking, made.model, alias="champion", c=1.0)
    first = made.release()
    assert first.outcome == "promoted", first.reason
    assert "- checks reached the pods through the Service's ClusterIP and pod IPs" in \
        first.report, first.report
    assert "not the default route" in first.report
    pods = made.core.list_namespaced_pod(made.namespace,
                                         label_selector=made.pod_selector("primary")).items
    (pod,) = [p for p in pods if p.metadata.deletion_timestamp is None]
    status = pod.status.container_statuses[0]
    assert status.ready and first.image.split("@")[1] in status.image_id, status
    assert stack.node is not None and pod.spec.node_name == stack.node.name
    logs = subprocess.run([str(kube_assets_dir() / "kubectl"), "--kubeconfig",
                           str(stack.kubeconfig), "-n", made.namespace, "logs",
                           pod.metadata.name], capture_output=True, text=True, timeout=60)
    assert logs.returncode == 0, logs.stderr
    assert "modelrelease serving: loaded /opt/ml/model" in logs.stdout, logs.stdout
    assert "modelrelease serving: listening on 0.0.0.0:8080" in logs.stdout, logs.stdout

    register_iris_model(tracking, made.model, alias="champion", c=0.3)
    with background_client(made) as background:
        second = made.release()
    assert second.outcome == "promoted", second.reason
    assert background.failed == [] and background.ok > 50, (background.ok,
                                                           background.failed[:5])
    print(f"real node: v1 in {first.seconds:.1f}s, v2 in {second.seconds:.1f}s "
          f"(hold {second.hold_seconds:.1f}s), {background.ok} ClusterIP requests, 0 lost")


def test_an_image_the_kubelet_cannot_pull_rolls_back_with_the_kubelets_reason(
        stack: Stack, crd: None, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The endpoint moves to a private registry, but the cluster has no pull secret for it.

    The pipeline pushes with its own credentials; the real kubelet's pull is refused (401),
    the canary shows ErrImagePull / ImagePullBackOff and the release rolls back at once with
    the kubelet's words; the primary (from the open registry) keeps serving.
    """
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
