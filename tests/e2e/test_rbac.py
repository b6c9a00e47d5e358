"""The pipeline's least-privilege identity (deployments/kubernetes/rbac.yaml), on the stack.

A token bound to the ``modelrelease-pipeline`` ServiceAccount (TokenRequest, as a pod's
projected token would be) runs whole releases; what the file does not grant is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from modelrelease.adapters.kube import KubeCluster
from modelrelease.errors import KubeApiError
from modelrelease.release.driver import run_release
from modelrelease.settings import KubeConfig
from modelrelease.spec import ReleaseRequest
from modelrelease_localstack.demo_model import register_iris_model
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import Endpoint, make_endpoint
from tests.kube import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.security]
RBAC = Path(__file__).resolve().parents[2] / "deployments/kubernetes/rbac.yaml"
SA, SA_NAMESPACE = "modelrelease-pipeline", "modelrelease"


def _documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(RBAC.read_text()) if d]


def _binding_for(namespace: str) -> dict[str, Any]:
    """The file's example RoleBinding, copied to ``namespace`` as its comment says."""
    (example,) = [d for d in _documents()
                  if d["kind"] == "RoleBinding" and d["roleRef"]["name"] == SA]
    copied = json.loads(json.dumps(example))
    copied["metadata"]["namespace"] = namespace
    return dict(copied)


@pytest.fixture(scope="module")
def pipeline_kubeconfig(stack: Stack, crd: None,
                        tmp_path_factory: pytest.TempPathFactory) -> Path:
    """rbac.yaml applied by an admin; a kubeconfig holding a token of the pipeline's SA."""
    assert stack.controlplane is not None
    admin = KubeCluster(KubeConfig(kubeconfig=stack.kubeconfig))
    try:
        for document in _documents():
            if document["kind"] == "RoleBinding" and document["metadata"]["namespace"] == "ml":
                admin.apply({"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": "ml"}})
            admin.apply(document)
    finally:
        admin.close()
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(stack.kubeconfig)))
    token = core.create_namespaced_service_account_token(
        SA, SA_NAMESPACE, {"spec": {"expirationSeconds": 3600}}).status.token
    path = tmp_path_factory.mktemp("rbac") / "pipeline.kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "pipeline",
        "clusters": [{"name": "local", "cluster": {
            "server": stack.controlplane.server,
            "certificate-authority": str(stack.controlplane.ca_cert)}}],
        "users": [{"name": SA, "user": {"token": token}}],
        "contexts": [{"name": "pipeline", "context": {"cluster": "local", "user": SA}}],
    }))
    return path


@pytest.fixture
def endpoint(stack: Stack, crd: None, tmp_path: Path) -> Iterator[Endpoint]:
    made = make_endpoint(stack, tmp_path)
    yield made
    made.core.delete_namespace(made.namespace)


def _as_pipeline(endpoint: Endpoint, kubeconfig: Path) -> Any:
    kube = endpoint.settings.kube.model_copy(update={"kubeconfig": kubeconfig})
    return endpoint.settings.model_copy(update={"kube": kube})


def test_a_whole_release_runs_as_the_pipeline_identity_alone(
        stack: Stack, endpoint: Endpoint, pipeline_kubeconfig: Path) -> None:
    admin = KubeCluster(KubeConfig(kubeconfig=stack.kubeconfig))
    try:
        admin.apply(_binding_for(endpoint.namespace))
    finally:
        admin.close()
    settings = _as_pipeline(endpoint, pipeline_kubeconfig)
    tracking = str(endpoint.settings.mlflow.tracking_uri)
    for c in (1.0, 0.3):  # a first release, then a canary that is promoted (delete included)
        register_iris_model(tracking, endpoint.model, alias="champion", c=c)
        result = run_release(ReleaseRequest(endpoint=str(endpoint.file)), settings,
                             say=print)
        assert result.outcome == "promoted", result.reason
    status = endpoint.status()
    assert status["primary"]["version"] == "2" and status["phase"] == "Promoted"
    eventually(lambda: endpoint.image("canary") is None, 60, "canary removed")


def test_what_the_role_does_not_grant_is_refused(endpoint: Endpoint,
                                                 pipeline_kubeconfig: Path) -> None:
    api = config.new_client_from_config(config_file=str(pipeline_kubeconfig))
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    refused = {
        "read Secrets in another namespace": lambda: core.list_namespaced_secret("kube-system"),
        "read Secrets in its own namespace": lambda: core.list_namespaced_secret(SA_NAMESPACE),
        "read a ConfigMap": lambda: core.list_namespaced_config_map("kube-system"),
        "create a Pod": lambda: core.create_namespaced_pod(endpoint.namespace, {
            "metadata": {"name": "x"},
            "spec": {"containers": [{"name": "x", "image": "x"}]}}),
        "exec into pods": lambda: core.connect_get_namespaced_pod_exec(
            "x", endpoint.namespace, command=["id"]),
        "delete a namespace": lambda: core.delete_namespace(endpoint.namespace),
        "create a Deployment outside bound namespaces": lambda: apps.create_namespaced_deployment(
            "kube-system", {"metadata": {"name": "x"}, "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}},
                             "spec": {"containers": [{"name": "x", "image": "x"}]}}}}),
        "bind itself a role": lambda: client.RbacAuthorizationV1Api(api)
        .create_namespaced_role_binding(endpoint.namespace, {
            "metadata": {"name": "x"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": SA, "namespace": SA_NAMESPACE}]}),
    }
    for what, attempt in refused.items():
        with pytest.raises(client.ApiException) as caught:
            attempt()
        assert caught.value.status == 403, (what, caught.value.status)


def test_a_namespace_not_bound_to_the_pipeline_fails_clearly_and_changes_nothing(
        endpoint: Endpoint, pipeline_kubeconfig: Path) -> None:
    register_iris_model(str(endpoint.settings.mlflow.tracking_uri), endpoint.model,
                        alias="champion")
    settings = _as_pipeline(endpoint, pipeline_kubeconfig)
    with pytest.raises(KubeApiError) as caught:
        run_release(ReleaseRequest(endpoint=str(endpoint.file)), settings, say=print)
    assert caught.value.status == 403
    assert "forbidden" in caught.value.message.lower()
    assert endpoint.namespace in caught.value.message
    # who, as the API server's SelfSubjectReview names it
    assert f'User "system:serviceaccount:{SA_NAMESPACE}:{SA}" may not ' in caught.value.message
    assert endpoint.apps.list_namespaced_deployment(endpoint.namespace).items == []
    assert endpoint.core.list_namespaced_service(endpoint.namespace).items == []
