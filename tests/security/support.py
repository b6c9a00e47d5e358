"""Helpers for the security suite: what the cluster, the registries and MLflow hold right now."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import httpx

from modelrelease.adapters.kube import KubeCluster

KINDS = (("apps/v1", "Deployment"), ("v1", "Service"),
         ("modelrelease.io/v1alpha1", "ModelEndpoint"), ("coordination.k8s.io/v1", "Lease"),
         ("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"))
LENIENT = {"latency": {"p99Ms": 30_000, "maxRegression": 10}, "maxErrorRate": 0.2,
           "minRequests": 20}
"""Checks a release on a busy 2-core machine passes: these tests need a primary, not a verdict."""
MANIFESTS = ", ".join(("application/vnd.oci.image.manifest.v1+json",
                       "application/vnd.oci.image.index.v1+json",
                       "application/vnd.docker.distribution.manifest.v2+json"))


def cluster_state(admin: KubeCluster, namespace: str) -> dict[str, Any]:
    """The endpoint namespace's objects (spec, labels, annotations; a record's status too).

    Controllers' own status writes (an HPA without metrics, ...) are not changes we made,
    so only the ModelEndpoint, whose status is the pipeline's, keeps its status. Namespaces
    that are Terminating (other tests' cleanup) are left out.
    """
    state: dict[str, Any] = {"namespaces": sorted(
        o["metadata"]["name"] for o in admin.list_objects("v1", "Namespace")
        # an earlier test's namespace still being deleted may vanish during a case
        if (o.get("status") or {}).get("phase") != "Terminating")}
    for api_version, kind in KINDS:
        for obj in admin.list_objects(api_version, kind, namespace):
            meta = obj["metadata"]
            state[f"{kind}/{meta['name']}"] = {
                "uid": meta.get("uid"), "labels": meta.get("labels"),
                "annotations": meta.get("annotations"), "spec": obj.get("spec"),
                "status": obj.get("status") if kind == "ModelEndpoint" else None}
    return state


def registry_state(base_url: str, *, auth: tuple[str, str] | None = None,
                   ca_file: Path | None = None) -> dict[str, dict[str, str]]:
    """Every repository's tags and the digest each points at (``/v2/_catalog``, tags/list)."""
    state: dict[str, dict[str, str]] = {}
    verify = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
    with httpx.Client(base_url=base_url, auth=auth, verify=verify, timeout=30,
                      trust_env=False) as http:
        catalog = http.get("/v2/_catalog", params={"n": 1000})
        catalog.raise_for_status()
        for repo in catalog.json().get("repositories") or []:
            tags = http.get(f"/v2/{repo}/tags/list")
            if tags.status_code == 404:  # blobs but no tag yet (e.g. a push that gave up)
                state[repo] = {}
                continue
            tags.raise_for_status()
            state[repo] = {
                tag: http.head(f"/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFESTS}
                               ).headers.get("Docker-Content-Digest", "?")
                for tag in sorted(tags.json().get("tags") or [])}
    return state


def mlflow_state(tracking_uri: str) -> dict[str, Any]:
    """Every registered model's tags and aliases, and each version's tags, aliases and stage."""
    from mlflow.tracking import MlflowClient

    mlflow = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    state: dict[str, Any] = {}
    for model in mlflow.search_registered_models(max_results=1000):
        versions = mlflow.search_model_versions(f"name='{model.name}'", max_results=1000)
        state[model.name] = {
            "tags": dict(model.tags), "aliases": dict(model.aliases),
            "versions": {v.version: {"tags": dict(v.tags), "aliases": sorted(v.aliases),
                                     "stage": v.current_stage} for v in versions}}
    return state


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The keys whose values differ, one line each (empty: nothing changed)."""
    return [f"{key}: {json.dumps(before.get(key), default=str)[:200]} -> "
            f"{json.dumps(after.get(key), default=str)[:200]}"
            for key in sorted(set(before) | set(after), key=str)
            if before.get(key) != after.get(key)]


def register_bare_model(tracking_uri: str, name: str) -> str:
    """An iris model logged with neither a signature nor an input example; its version."""
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    data = load_iris(as_frame=True)
    model = LogisticRegression(max_iter=500).fit(data.data.to_numpy(), data.target)
    mlflow.set_experiment(f"{name}-training")
    with mlflow.start_run():
        info: Any = mlflow.sklearn.log_model(
            model, name="model", serialization_format="skops", registered_model_name=name,
            pip_requirements=["scikit-learn", "skops"],
            skops_trusted_types=["numpy.dtype",
                                 "sklearn.linear_model._logistic.LogisticRegression"])
    version = str(info.registered_model_version)
    mlflow.MlflowClient(tracking_uri=tracking_uri).set_registered_model_alias(
        name, "champion", version)
    return version


def kubeconfig_to(source: Path, server: str, dest: Path) -> Path:
    """A copy of the kubeconfig ``source`` whose clusters all point at ``server``."""
    import yaml

    document = yaml.safe_load(source.read_text())
    for cluster in document.get("clusters") or []:
        cluster["cluster"]["server"] = server
    dest.write_text(yaml.safe_dump(document))
    return dest


def endpoint_world(admin: KubeCluster, registry_url: str, tracking_uri: str, *,
                   namespace: str, name: str, model: str) -> dict[str, Any]:
    """The cluster, the local registry and MLflow, less what other tests' endpoints own.

    The other stack part (``--part=stack-b``) releases its own endpoints meanwhile, each
    named as ``tests.e2e.helpers.make_endpoint`` names them (namespace ``e2e-*``,
    repository ``e2e/ep*``, model ``model-*``), and ``tests/e2e/test_install.py``'s Job-run
    endpoints and pipeline image (model ``jobrun-*``, repositories ``ml/jobrun-*`` and
    ``modelrelease/*``): those are left out; this
    endpoint's own (``namespace``, ``e2e/NAME``, ``model``) are kept, as is everything else.
    (CI red at c66737b: an install test's release, beside this one, read as a change.)
    """
    cluster = cluster_state(admin, namespace)
    cluster["namespaces"] = [n for n in cluster["namespaces"]
                             if not n.startswith("e2e-") or n == namespace]
    return {
        "cluster": cluster,
        "registry": {repo: tags for repo, tags in registry_state(registry_url).items()
                     if not repo.startswith(("e2e/", "ml/jobrun-", "modelrelease/"))
                     or repo == f"e2e/{name}"},
        "mlflow": {found: state for found, state in mlflow_state(tracking_uri).items()
                   if not found.startswith(("model-", "jobrun-")) or found == model},
    }
