"""Benchmark: the local stack's start times, idle memory, and time to an Available model pod.

Run ``.venv/bin/python benchmarks/stack.py`` (the kube binaries must be built already:
``scripts/kube-assets``). Everything goes through the real CLI, ``modelrelease dev ...``, in a
fresh temporary root that is stopped and deleted at the end (also on error or SIGTERM).
Prints one JSON object on stdout; progress goes to stderr.

``{"bench": "stack", ...}``
    ``cold_up_s``: wall time of the first ``dev up`` in the fresh root (fresh databases and
    migrations, demo model trained and registered, serving base pushed).
    ``warm_up_s``: ``dev up`` again while it runs (re-used: nothing starts).
    ``idle_rss_mb``: summed VmRSS of every process of the stack, their children and process
    groups included, after ``--idle`` (20) seconds idle; ``idle_rss_by_component_mb`` splits it.
    ``deploy_to_available_s``: from creating a Deployment of the demo model's image (built with
    ``ImageBuilder`` onto the stack's serving base, before the clock starts) until it is Available
    (readiness probe ``/ping`` passed), including the node's first pull of the image;
    ``deploy_cached_s`` is the same for a second Deployment of it (layers already on the node).
    ``restart_up_s``: ``dev up`` after ``dev down`` in the same root (databases, model and
    image kept). ``components_s``: the cold start's per-part seconds from ``stack.json``.
    The node is the real one (containerd, kubelet, kube-proxy) and the base the
    self-contained mmdebstrap one; the node agent this used to be compared with is gone
    (its last figures are in the closing note of issue 12). ``model_build_s`` and
    ``model_rebuild_s``: the demo model's image built the first time (its dependency layer
    not cached) and again (unchanged: HEADs only);
    ``model_image_mb``/``base_image_mb``: compressed sizes of the layers of each image.
    ``--base-cache DIR`` sets where the serving base is cached (an empty dir: a cold build,
    which ``components_s["serving base"]`` then times).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")

from _common import log, sigterm_as_exit

from modelrelease.build.builder import BuildRequest, ImageBuilder
from modelrelease.domain.reference import ImageRef
from modelrelease.settings import PipelineSettings
from modelrelease_localstack.stack import (
    DEMO_ALIAS,
    DEMO_MODEL,
    ENV_SERVING_BASE,
    StackState,
    read_state,
    stack_status,
    stop_stack,
)

CLI = str(Path(sys.executable).parent / "modelrelease")
MIB = 1024 * 1024


def dev(*args: str) -> float:
    """Run ``modelrelease dev ARGS`` (its stderr passes through); return its wall time."""
    began = time.monotonic()
    subprocess.run([CLI, "dev", *args], check=True, stdout=subprocess.DEVNULL, timeout=900)
    return round(time.monotonic() - began, 2)


def deployment(name: str, image: str) -> dict[str, Any]:
    labels = {"app": name}
    container = {
        "name": "model", "image": image,
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/ping", "port": "http"}, "periodSeconds": 1},
        "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}},
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [container],
                                           "terminationGracePeriodSeconds": 5}}}}


def seconds_to_available(apps: Any, namespace: str, name: str, image: str,
                         timeout: float = 300) -> float:
    began = time.monotonic()
    apps.create_namespaced_deployment(namespace, deployment(name, image))
    while time.monotonic() - began < timeout:
        status = apps.read_namespaced_deployment_status(name, namespace).status
        conditions = {c.type: c.status for c in status.conditions or []}
        if conditions.get("Available") == "True" and (status.available_replicas or 0) >= 1:
            return round(time.monotonic() - began, 2)
        time.sleep(0.05)
    raise TimeoutError(f"deployment {namespace}/{name} not Available after {timeout:.0f}s")


def deploy(state: StackState) -> dict[str, float]:
    """Build the demo model's image, then time two Deployments of it to Available."""
    from kubernetes import client, config

    env = state.env()
    settings = PipelineSettings(mlflow={"tracking_uri": state.mlflow_url},
                                build={"cache_dir": Path(state.root) / "cache"})
    builder = ImageBuilder(settings, progress=lambda line: log(f"  {line}"))
    request = BuildRequest(model=f"models:/{DEMO_MODEL}@{DEMO_ALIAS}",
                           base=env[ENV_SERVING_BASE], to=f"{state.registry_host}/ml/{DEMO_MODEL}")
    try:
        built = builder.build(request)
        again = builder.build(request)
        base = builder.registry.read_image(ImageRef.parse(env[ENV_SERVING_BASE]))
    finally:
        builder.registry.close()
    log(f"built {built.image} in {built.seconds:.1f}s, again in {again.seconds:.2f}s")
    sizes = {"model_build_s": round(built.seconds, 2), "model_rebuild_s": round(again.seconds, 2),
             "model_image_mb": round(sum(d.size for d in base.layers + built.layers) / MIB, 1),
             "base_image_mb": round(sum(d.size for d in base.layers) / MIB, 1)}
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    with config.new_client_from_config(config_file=env["KUBECONFIG"]) as api:
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        core.create_namespace({"metadata": {"name": namespace,
                                            "labels": {"created-by": "benchmarks"}}})
        try:
            first = seconds_to_available(apps, namespace, "iris", built.image)
            log(f"deployment Available in {first:.2f}s (first pull)")
            second = seconds_to_available(apps, namespace, "iris-again", built.image)
            log(f"second deployment Available in {second:.2f}s (image cached)")
        finally:
            core.delete_namespace(namespace)
    return {"deploy_to_available_s": first, "deploy_cached_s": second, **sizes}


def idle_rss(root: Path) -> tuple[float, dict[str, float]]:
    _, report = stack_status(root)
    down = [c.name for c in report if not c.up]
    if down:
        raise RuntimeError(f"stack not healthy while idle: {', '.join(down)} down")
    by_name = {c.name: round(c.rss_bytes / MIB, 1) for c in report}
    return round(sum(c.rss_bytes for c in report) / MIB, 1), by_name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idle", type=float, default=20.0, help="seconds idle before RSS")
    parser.add_argument("--no-deploy", action="store_true", help="skip deploy_to_available_s")
    parser.add_argument("--keep", action="store_true", help="keep the root (stack stopped)")
    parser.add_argument("--base-cache", type=Path, default=None,
                        help="serving base cache (default: the build cache)")
    args = parser.parse_args(argv)
    if args.base_cache is not None:
        os.environ["MODELRELEASE_BUILD__CACHE_DIR"] = str(args.base_cache)
    measure(args)
    return 0


def measure(args: argparse.Namespace) -> None:
    """One stack: cold, warm, idle, deploy, down and up again."""
    root = Path(tempfile.mkdtemp(prefix="stack-bench-")) / "stack"
    record: dict[str, Any] = {"bench": "stack"}
    with sigterm_as_exit():
        try:
            log(f"cold up of a stack in {root}")
            record["cold_up_s"] = dev("up", "--root", str(root))
            state = read_state(root)
            assert state is not None
            record["components_s"] = state.seconds
            record["warm_up_s"] = dev("up", "--root", str(root))
            log(f"idle for {args.idle:.0f}s")
            time.sleep(args.idle)
            record["idle_rss_mb"], record["idle_rss_by_component_mb"] = idle_rss(root)
            if args.no_deploy:
                record["deploy_to_available_s"] = None
            else:
                record.update(deploy(state))
            record["down_s"] = dev("down", "--root", str(root))
            record["restart_up_s"] = dev("up", "--root", str(root))
            restarted = read_state(root)
            assert restarted is not None
            record["restart_components_s"] = restarted.seconds
        finally:
            with contextlib.suppress(Exception):
                stop_stack(root)
            if not args.keep:
                shutil.rmtree(root.parent, ignore_errors=True)
    record["load_avg_1m"] = round(os.getloadavg()[0], 2)
    record["cpus"] = os.cpu_count()
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    sys.exit(main())
