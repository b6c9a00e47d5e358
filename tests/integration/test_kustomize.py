"""`kubectl apply -k deployments/kubernetes` (and the local overlay) render what they say.

kubectl's own kustomize (the Kubernetes build's kubectl) renders both; what comes out is
read here as the API server would get it. Applying it to a real cluster, with the worker
and the bridge running from the pipeline image, is tests/e2e/test_install.py.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelrelease_localstack.controlplane import kube_assets_dir
from modelrelease_localstack.install import PIPELINE_IMAGE, overlay_component

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deployments" / "kubernetes"
DIGEST = "sha256:" + "cd" * 32


def _kustomize(folder: Path) -> dict[tuple[str, str], dict[str, Any]]:
    kubectl = kube_assets_dir() / "kubectl"
    assert os.access(kubectl, os.X_OK), f"{kubectl}: run scripts/kube-assets"
    done = subprocess.run([str(kubectl), "kustomize", str(folder)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return {(d["kind"], d["metadata"]["name"]): d
            for d in yaml.safe_load_all(done.stdout) if d}


def _pod(objects: dict[tuple[str, str], dict[str, Any]], name: str) -> dict[str, Any]:
    deployment = objects[("Deployment", name)]
    assert deployment["metadata"]["namespace"] == "modelrelease"
    return dict(deployment["spec"]["template"]["spec"])


def test_the_base_installs_the_crd_rbac_worker_and_bridge_hardened() -> None:
    objects = _kustomize(BASE)
    for key in [("CustomResourceDefinition", "modelendpoints.modelrelease.io"),
                ("Namespace", "modelrelease"), ("Namespace", "ml"),
                ("ServiceAccount", "modelrelease-pipeline"), ("ServiceAccount", "prefect-worker"),
                ("ServiceAccount", "modelrelease-webhook"), ("Role", "prefect-worker"),
                ("ClusterRole", "modelrelease-pipeline"), ("Service", "modelrelease-webhook")]:
        assert key in objects, key
    work_pool = [d for (kind, name), d in objects.items()
                 if kind == "ConfigMap" and name.startswith("modelrelease-work-pool-")]
    (pool_map,) = work_pool
    assert json.loads(pool_map["data"]["work-pool.json"]) == json.loads(
        (BASE / "work-pool.json").read_text())
    worker, bridge = _pod(objects, "prefect-worker"), _pod(objects, "modelrelease-webhook")
    assert worker["serviceAccountName"] == "prefect-worker"
    assert bridge["serviceAccountName"] == "modelrelease-webhook"
    assert bridge["automountServiceAccountToken"] is False  # it needs no Kubernetes API
    for pod in (worker, bridge):
        # no <SERVICE>_SERVICE_HOST variables: MODELRELEASE_WEBHOOK_* would be read as settings
        assert pod["enableServiceLinks"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["image"] == f"{PIPELINE_IMAGE}:0.1.0"
            assert container["envFrom"] == [{"secretRef": {"name": "modelrelease-settings"}}]
            assert container["securityContext"] == {"allowPrivilegeEscalation": False,
                                                    "readOnlyRootFilesystem": True,
                                                    "capabilities": {"drop": ["ALL"]}}
    container, watch = worker["containers"]
    # beside the worker: failing runs whose Job's pod cannot start, in the worker's namespace
    assert watch["args"] == ["modelrelease", "jobs", "watch", "--namespace", "$(POD_NAMESPACE)",
                             "--grace", "2m"]
    (pod_namespace,) = [e for e in watch["env"] if e["name"] == "POD_NAMESPACE"]
    assert pod_namespace["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    args = container["args"]
    assert args[:3] == ["prefect", "worker", "start"]
    assert args[args.index("--pool") + 1] == "modelrelease-k8s"
    assert args[args.index("--type") + 1] == "kubernetes"
    assert args[args.index("--name") + 1] == "$(POD_NAME)"  # the kubelet expands it
    (pod_name,) = [e for e in container["env"] if e["name"] == "POD_NAME"]
    assert pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    template = args[args.index("--base-job-template") + 1]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert template == f"{mounts['work-pool']}/work-pool.json"
    volumes = {v["name"]: v for v in worker["volumes"]}
    assert volumes["work-pool"]["configMap"]["name"] == pool_map["metadata"]["name"]
    (bridge_container,) = bridge["containers"]
    env = {e["name"]: e.get("value") for e in bridge_container["env"]}
    bridge_mounts = {m["name"]: m["mountPath"] for m in bridge_container["volumeMounts"]}
    assert env["MODELRELEASE_RELEASE__ENDPOINTS_DIR"] == bridge_mounts["endpoints"]
    service = objects[("Service", "modelrelease-webhook")]
    assert service["spec"]["selector"] == objects[("Deployment", "modelrelease-webhook")][
        "spec"]["selector"]["matchLabels"]


def test_the_local_overlay_puts_in_the_stacks_image_settings_and_endpoints(
        tmp_path: Path) -> None:
    overlay = tmp_path / "kubernetes-local"  # a copy: the checkout's generated/ is left alone
    shutil.copytree(ROOT / "deployments" / "kubernetes-local", overlay,
                    ignore=shutil.ignore_patterns("generated"))
    text = (overlay / "kustomization.yaml").read_text()
    (overlay / "kustomization.yaml").write_text(text.replace(  # kustomize takes no absolute root
        "  - ../kubernetes\n", f"  - {os.path.relpath(BASE, overlay)}\n"))
    generated = overlay / "generated"
    (generated / "endpoints").mkdir(parents=True)
    shutil.copyfile(ROOT / "deployments/endpoints/iris.yaml",
                    generated / "endpoints" / "iris.yaml")
    (generated / "kustomization.yaml").write_text(yaml.safe_dump(overlay_component(
        f"10.245.0.1:5000/modelrelease/pipeline@{DIGEST}",
        {"PREFECT_API_URL": "http://10.245.0.1:4200/api"}, ["iris.yaml"])))
    objects = _kustomize(overlay)
    for name in ("prefect-worker", "modelrelease-webhook"):
        for container in _pod(objects, name)["containers"]:
            assert container["image"] == f"10.245.0.1:5000/modelrelease/pipeline@{DIGEST}"
            assert container["imagePullPolicy"] == "IfNotPresent"
    watch = {c["name"]: c for c in _pod(objects, "prefect-worker")["containers"]}["job-watch"]
    assert watch["args"][-2:] == ["--grace", "15s"]  # the stack's tests wait 15 s, not 2 m
    assert watch["env"] and watch["envFrom"]  # the base's, kept by the patch
    secret = objects[("Secret", "modelrelease-settings")]  # no hash suffix: the Jobs name it
    assert secret["metadata"]["namespace"] == "modelrelease"
    assert base64.b64decode(secret["data"]["PREFECT_API_URL"]).decode() == \
        "http://10.245.0.1:4200/api"
    endpoints = objects[("ConfigMap", "modelrelease-endpoints")]
    assert endpoints["data"]["iris.yaml"] == (ROOT / "deployments/endpoints/iris.yaml").read_text()
    # the flow runs' Jobs get the same Secret and ConfigMap (the work pool's template)
    template = json.loads((BASE / "work-pool.json").read_text())
    job_pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    assert {"name": "endpoints", "configMap": {"name": "modelrelease-endpoints"}} in \
        job_pod["volumes"]
    assert job_pod["enableServiceLinks"] is False
    assert job_pod["containers"][0]["envFrom"] == [
        {"secretRef": {"name": "modelrelease-settings"}}]
