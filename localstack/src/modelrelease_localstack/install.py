"""The pipeline installed into the local stack's cluster: ``modelrelease dev install``.

What a platform team does on its own cluster (``kubectl apply -k deployments/kubernetes``),
done on the local stack with its addresses filled in:

1. the pipeline image (``modelrelease image pipeline``) is built into the stack's registry
   (cached: seconds when nothing changed), unless one is given;
2. the local overlay's component, ``deployments/kubernetes-local/generated/`` (not in git),
   is written: the image by digest, the ``modelrelease-settings`` Secret (where pods reach
   the stack's Prefect, MLflow and registry: the node's relay, ``10.245.N.1:PORT``; the
   webhook's secret, kept from the installed Secret unless one is given) and the
   ``modelrelease-endpoints`` ConfigMap (the ModelEndpoint files);
3. ``kubectl apply -k deployments/kubernetes-local``, then both Deployments (the Prefect
   worker, the webhook bridge) are waited for until rolled out.

:func:`overlay_component` (what is written) and :func:`choose_webhook_secret` (which secret) are
pure; :func:`install` does the I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from modelrelease.errors import StackError
from modelrelease.spec import load_endpoints
from modelrelease_localstack.stack_state import StackState

__all__ = ["DEPLOYMENTS", "NAMESPACE", "PIPELINE_IMAGE", "SETTINGS_SECRET", "WEBHOOK_SECRET_KEY",
           "Installed", "build_pipeline_image", "choose_webhook_secret", "install",
           "overlay_component", "overlay_dir", "pod_problems", "stack_settings"]

NAMESPACE: Final = "modelrelease"
DEPLOYMENTS: Final = ("prefect-worker", "modelrelease-webhook")
"""The install's Deployments, in ``NAMESPACE``: what ``install`` waits for."""
PIPELINE_IMAGE: Final = "registry.example.com/modelrelease-pipeline"
"""The image the base's workloads name (deployments/kubernetes; the overlay replaces it)."""
WEBHOOK_PORT: Final = 80
"""The bridge's Service port (``deployments/kubernetes/webhook.yaml``)."""
SETTINGS_SECRET: Final = "modelrelease-settings"
"""The Secret of the pipeline's settings, in ``NAMESPACE`` (the component's generator)."""
WEBHOOK_SECRET_KEY: Final = "MODELRELEASE_WEBHOOK__SECRET"
"""The webhook's secret in ``SETTINGS_SECRET``: MLflow's webhook is registered with it."""


@dataclass(frozen=True)
class Installed:
    """What :func:`install` put into the cluster."""

    image: str
    """The pipeline image, by digest."""
    settings: dict[str, str]
    """The ``modelrelease-settings`` Secret's variables (the webhook's secret among them)."""
    endpoints: tuple[str, ...]
    """The ModelEndpoint files in the ``modelrelease-endpoints`` ConfigMap."""
    seconds: float
    """From ``kubectl apply`` until both Deployments were rolled out."""


def overlay_dir() -> Path:
    """``deployments/kubernetes-local`` of the checkout this package runs from."""
    return Path(__file__).resolve().parents[3] / "deployments" / "kubernetes-local"


def overlay_component(image: str, settings: Mapping[str, str],
                      endpoint_files: list[str]) -> dict[str, Any]:
    """The local overlay's generated component (its ``kustomization.yaml``).

    Args:
        image: The pipeline image, ``host/repository@sha256:...``.
        settings: The Secret's variables.
        endpoint_files: File names (in the component's ``endpoints/``) of the ConfigMap.

    Raises:
        StackError: ``image`` is not pinned by digest.
    """
    name, at, digest = image.partition("@")
    if not at or not digest.startswith("sha256:"):
        raise StackError(f"install pipeline: image {image!r} is not pinned by digest; give "
                         "REGISTRY/REPOSITORY@sha256:... (`modelrelease image pipeline` "
                         "prints it)")
    fixed = {"disableNameSuffixHash": True}  # the work pool's Job template names them as is
    return {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "images": [{"name": PIPELINE_IMAGE, "newName": name, "digest": digest}],
        "secretGenerator": [{
            "name": SETTINGS_SECRET, "namespace": NAMESPACE, "options": fixed,
            "literals": [f"{key}={value}" for key, value in sorted(settings.items())]}],
        "configMapGenerator": [{
            "name": "modelrelease-endpoints", "namespace": NAMESPACE, "options": fixed,
            "files": [f"endpoints/{file}" for file in sorted(endpoint_files)]}],
    }


def stack_settings(state: StackState, webhook_secret: str) -> dict[str, str]:
    """The pipeline's settings as pods see the stack: through the node's relay.

    Raises:
        StackError: The stack has no node (nothing relays its services to pods).
    """
    missing = [name for name in ("prefect", "mlflow", "registry")
               if name not in state.in_cluster]
    if missing:
        raise StackError(f"install pipeline into stack {state.root}: pods cannot reach its "
                         f"{', '.join(missing)} (no node, or a stack started before in-cluster "
                         "addresses existed); run `modelrelease dev down` then "
                         "`modelrelease dev up`")
    where = state.in_cluster
    return {
        "PREFECT_API_URL": f"http://{where['prefect']}/api",
        "MODELRELEASE_MLFLOW__TRACKING_URI": f"http://{where['mlflow']}",
        # the registry as pods reach it is not on loopback: plain http, said so
        "MODELRELEASE_REGISTRY__INSECURE_REGISTRIES": json.dumps([where["registry"]]),
        WEBHOOK_SECRET_KEY: webhook_secret,
    }


def choose_webhook_secret(given: str | None, installed: str | None,
                          new: Callable[[], str] = lambda: secrets.token_urlsafe(24)) -> str:
    """The webhook's secret for an install: ``given``, else the ``installed`` one, else ``new()``.

    Keeping the installed secret keeps MLflow's webhook, registered with it, working across
    installs; an empty value counts as none.

    Args:
        given: The caller's (``MODELRELEASE_WEBHOOK__SECRET``), if any.
        installed: The cluster's ``SETTINGS_SECRET`` value, if any.
        new: Makes a secret when there is neither.
    """
    return given or installed or new()


def build_pipeline_image(state: StackState, progress: Callable[[str], None] = print) -> str:
    """Build (or re-use) the pipeline image into the stack's registry; return it by digest.

    Raises:
        BuildError: The build failed (pip, the serving base's rootfs).
        RegistryError: The push failed.
    """
    from modelrelease.adapters.oci_registry import RegistryClient
    from modelrelease.build.pipeline_image import PipelineImageBuilder
    from modelrelease.settings import PipelineSettings, RegistryConfig

    if not state.registry_host:
        raise StackError(f"build pipeline image for stack {state.root}: its registry is not up; "
                         "run `modelrelease dev up`")
    target = f"{state.registry_host}/{NAMESPACE}/pipeline:latest"
    with RegistryClient(RegistryConfig()) as client:
        built = PipelineImageBuilder(PipelineSettings().build.cache_dir, progress).build(
            target, client)
    progress(built.summary("pipeline image"))
    return built.image


def install(state: StackState, image: str, kubectl: Path, *, endpoints_dir: Path,
            webhook_secret: str | None = None, overlay: Path | None = None,
            timeout: float = 180, progress: Callable[[str], None] = print) -> Installed:
    """Write the local overlay's component, apply the overlay, wait for the Deployments.

    The webhook's secret is ``webhook_secret``, else the one the cluster's ``SETTINGS_SECRET``
    holds (a reinstall keeps it), else a new one (:func:`choose_webhook_secret`).

    Raises:
        StackError: The image is not by digest, the stack has no in-cluster addresses, or
            kubectl failed (its own message, with the fix).
        InvalidInput: An endpoint file is not a valid ModelEndpoint (nothing is applied).
    """
    import time

    overlay = overlay or overlay_dir()
    if not (overlay / "kustomization.yaml").is_file():
        raise StackError(f"install pipeline: {overlay / 'kustomization.yaml'} is missing; run "
                         "from a modelrelease checkout")
    loaded = load_endpoints(endpoints_dir)  # bad files fail here, before the cluster changes
    base = [str(kubectl), "--kubeconfig", str(state.kubeconfig)]
    installed = _installed_webhook_secret(base)
    settings = stack_settings(state, choose_webhook_secret(webhook_secret, installed))
    if installed and settings[WEBHOOK_SECRET_KEY] != installed:
        progress(f"the webhook's secret changes ({WEBHOOK_SECRET_KEY} differs from the "
                 "installed one): register MLflow's webhook again with it "
                 "(`modelrelease webhook register`)")
    generated = overlay / "generated"
    shutil.rmtree(generated, ignore_errors=True)
    (generated / "endpoints").mkdir(parents=True)
    files = []
    for name in loaded:
        shutil.copyfile(endpoints_dir / f"{name}.yaml", generated / "endpoints" / f"{name}.yaml")
        files.append(f"{name}.yaml")
    component = overlay_component(image, settings, files)
    (generated / "kustomization.yaml").write_text(
        "# Written by `modelrelease dev install` for the stack in "
        f"{state.root}; not in git.\n" + yaml.safe_dump(component, sort_keys=False))
    began = time.monotonic()
    progress(f"kubectl apply -k {overlay}")
    _kubectl([*base, "apply", "-k", str(overlay)], timeout=120)
    for name in DEPLOYMENTS:
        left = max(5.0, timeout - (time.monotonic() - began))
        try:
            _kubectl([*base, "-n", NAMESPACE, "rollout", "status", f"deployment/{name}",
                      f"--timeout={int(left)}s"], timeout=left + 10)
        except StackError as exc:
            pods = _kubectl([*base, "-n", NAMESPACE, "get", "pods", "-l",
                             f"app.kubernetes.io/name={name}", "-o", "json"], timeout=30)
            logs = subprocess.run(
                [*base, "-n", NAMESPACE, "logs", f"deployment/{name}", "--tail=8"],
                capture_output=True, text=True, timeout=30, check=False)
            raise StackError(f"{exc.message}; its pods: "
                             f"{pod_problems(json.loads(pods)) or 'none yet'}; last log lines: "
                             f"{(logs.stdout or logs.stderr).strip()[-1200:] or 'none'}; see "
                             f"`kubectl -n {NAMESPACE} describe pods -l "
                             f"app.kubernetes.io/name={name}`") from None
        progress(f"deployment {NAMESPACE}/{name} rolled out "
                 f"({time.monotonic() - began:.1f}s after apply)")
    return Installed(image=image, settings=settings, endpoints=tuple(files),
                     seconds=time.monotonic() - began)


def _installed_webhook_secret(base: list[str]) -> str | None:
    """``WEBHOOK_SECRET_KEY`` of the cluster's ``NAMESPACE/SETTINGS_SECRET``, if any.

    ``None`` where there is no such Secret (a first install) or key.

    Raises:
        StackError: kubectl failed, or the value is not text.
    """
    encoded = _kubectl([*base, "-n", NAMESPACE, "get", "secret", SETTINGS_SECRET,
                        "--ignore-not-found", "-o",
                        f"jsonpath={{.data.{WEBHOOK_SECRET_KEY}}}"], timeout=30).strip()
    try:
        return base64.b64decode(encoded, validate=True).decode() or None
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise StackError(f"install pipeline: read secret {NAMESPACE}/{SETTINGS_SECRET}: its "
                         f"{WEBHOOK_SECRET_KEY} is not text ({exc}); set "
                         f"{WEBHOOK_SECRET_KEY} to the secret MLflow's webhook uses, or "
                         f"delete the key to get a new one") from None


def pod_problems(pods: Mapping[str, Any]) -> str:
    """Why a Deployment's pods are not ready, in the kubelet's own words.

    ``pods`` is a ``kubectl get pods -o json`` list; each container that is not ready gives
    its waiting reason and its last termination (exit code, reason, message).
    """
    said = []
    for pod in pods.get("items") or []:
        name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        for container in status.get("containerStatuses") or []:
            if container.get("ready"):
                continue
            parts = []
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting:
                parts.append(waiting.get("reason", "waiting"))
            last = (container.get("lastState") or {}).get("terminated") or {}
            if last:
                parts.append(f"last exit {last.get('exitCode')} ({last.get('reason')}): "
                             f"{(last.get('message') or '').strip()[-400:]}".rstrip(": "))
            elif waiting.get("message"):
                parts.append(waiting["message"][-400:])
            said.append(f"{name}/{container['name']}: {'; '.join(parts) or 'not ready'}")
        if not status.get("containerStatuses"):
            reasons = [f"{c.get('type')}={c.get('status')} {c.get('message', '')}".strip()
                       for c in status.get("conditions") or [] if c.get("status") != "True"]
            said.append(f"{name}: {status.get('phase', 'unknown')}"
                        + (f" ({'; '.join(reasons)})" if reasons else ""))
    return " | ".join(said)


def _kubectl(argv: list[str], *, timeout: float) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        raise StackError(f"install pipeline: `kubectl {' '.join(argv[3:])}` did not finish "
                         f"in {timeout:.0f}s") from None
    if done.returncode != 0:
        raise StackError(f"install pipeline: `kubectl {' '.join(argv[3:])}` exited "
                         f"{done.returncode}: {(done.stderr or done.stdout).strip()[-1500:]}")
    return done.stdout
