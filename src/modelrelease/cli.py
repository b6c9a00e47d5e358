"""The ``modelrelease`` command line: the same functions the flows call."""

from __future__ import annotations

import json
import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelrelease.domain.smtp import SmtpSecurity
from modelrelease.errors import InvalidInput, PipelineError, StackError

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from pydantic import SecretStr, ValidationError

    from modelrelease.adapters.email_block import SmtpEmail
    from modelrelease.adapters.oci_registry import RegistryClient
    from modelrelease.build.serving_base import ImageBuild
    from modelrelease.release.driver import Notify
    from modelrelease.settings import PipelineSettings
    from modelrelease.spec import ModelEndpoint, ModelEndpointStatus

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Release MLflow models to Kubernetes: build, canary, verify, promote.")
image_app = typer.Typer(no_args_is_help=True, help="Build serving images without a daemon.")
app.add_typer(image_app, name="image")
dev_app = typer.Typer(no_args_is_help=True,
                      help="The local stack: Kubernetes, node, registry, MLflow, Prefect.")
app.add_typer(dev_app, name="dev")


@dev_app.callback()
def _dev_needs_the_local_stack() -> None:
    """Refuse ``dev`` commands clearly where the local stack's package is not installed."""
    _needs_the_local_stack("modelrelease dev")


def _needs_the_local_stack(command: str) -> None:
    import importlib.util

    if importlib.util.find_spec("modelrelease_localstack") is None:
        raise _fail(StackError(
            f"{command}: the local stack ships apart from modelrelease and is not "
            "installed here; from a source checkout run scripts/bootstrap (or pip install "
            "-e ./localstack)"))
webhook_app = typer.Typer(no_args_is_help=True,
                          help="MLflow registry webhooks -> Prefect release events.")
app.add_typer(webhook_app, name="webhook")
notifications_app = typer.Typer(
    no_args_is_help=True, help="Tell people about releases: Prefect automations to a "
                               "webhook (Slack-compatible) and e-mail.")
app.add_typer(notifications_app, name="notifications")
deployments_app = typer.Typer(
    no_args_is_help=True, help="The Prefect deployments (deployments/prefect.yaml) for a "
                               "work pool of another kind.")
app.add_typer(deployments_app, name="deployments")
jobs_app = typer.Typer(no_args_is_help=True,
                       help="Flow-run Jobs of the Kubernetes work pool.")
app.add_typer(jobs_app, name="jobs")


def _progress(line: str) -> None:
    typer.echo(f"[modelrelease] {line}", err=True)


def _fail(exc: PipelineError) -> typer.Exit:
    typer.echo(f"error: {exc.message}", err=True)
    return typer.Exit(code=2)


@image_app.command("build")
def image_build(
    model: Annotated[str, typer.Option(help="models:/NAME/VERSION, models:/NAME@ALIAS, "
                                            "models:/NAME/STAGE or an MLflow model directory")],
    to: Annotated[str, typer.Option(help="REGISTRY/REPO[:TAG] or oci:DIR")],
    base: Annotated[str | None, typer.Option(
        help="serving base image, e.g. REGISTRY/ml/base:1 "
             "(default: MODELRELEASE_BUILD__BASE_IMAGE)")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="extra tag (repeatable)")] = None,
    compress_model: Annotated[bool | None, typer.Option(
        "--compress-model/--no-compress-model", help="gzip the model layer")] = None,
    port: Annotated[int | None, typer.Option(help="scoring server port")] = None,
) -> None:
    """Build and push a model version's serving image; print its pinned reference."""
    from modelrelease.build.builder import BuildRequest, build_image
    from modelrelease.settings import PipelineSettings

    try:
        base = base or PipelineSettings().build.base_image
        if base is None:
            raise InvalidInput("build image: no --base given and MODELRELEASE_BUILD__BASE_IMAGE "
                               "is not set; name the serving base image")
    except PipelineError as exc:
        raise _fail(exc) from None
    request = BuildRequest(model=model, base=base, to=to, tags=tuple(tag or ()),
                           compress_model=compress_model, port=port)
    try:
        result = build_image(request, progress=_progress)
    except PipelineError as exc:
        raise _fail(exc) from None
    _progress(f"{'re-used' if result.reused else 'built'} {result.model.name} "
              f"v{result.model.version} in {result.seconds:.2f}s, "
              f"{result.stats.bytes_uploaded} bytes uploaded, tags {', '.join(result.tags)}")
    typer.echo(result.image)


@image_app.command("base")
def image_base(
    to: Annotated[str, typer.Option(help="REGISTRY/REPO[:TAG] to push the serving base to")],
    recipe: Annotated[Path | None, typer.Option(
        help="folder with packages.txt and requirements.txt "
             "(default: deployments/serving-base of this checkout)")] = None,
    rebuild: Annotated[bool, typer.Option(
        "--rebuild", help="ignore the cached rootfs (pick up a newer mirror state)")] = False,
) -> None:
    """Build the serving base (Debian + Python + the scoring stack, with mmdebstrap); push it.

    Reproducible (the same recipe and mirror give the same digest) and cached under
    MODELRELEASE_BUILD__CACHE_DIR/serving-base: a warm run takes seconds. Prints the image
    by digest.
    """
    from modelrelease.build.serving_base import build_serving_base

    _push_built(to, "serving base", lambda client, cache_dir: build_serving_base(
        to, client, cache_dir, progress=_progress, recipe_dir=recipe, rebuild=rebuild))


@image_app.command("pipeline")
def image_pipeline(
    to: Annotated[str, typer.Option(help="REGISTRY/REPO[:TAG] to push the pipeline image to")],
    requirements: Annotated[Path | None, typer.Option(
        help="the pinned pipeline stack, one name==version per line "
             "(default: deployments/pipeline/requirements.txt of this checkout)")] = None,
    recipe: Annotated[Path | None, typer.Option(
        help="the serving base's recipe folder, whose Debian layer this image starts from "
             "(default: deployments/serving-base of this checkout)")] = None,
) -> None:
    """Build the pipeline's own image and push it: the flows run in it as Kubernetes Jobs.

    The serving base's Debian layer, the pinned pipeline stack (Prefect, prefect-kubernetes,
    the Kubernetes and MLflow clients) and modelrelease itself.

    Reproducible and cached under MODELRELEASE_BUILD__CACHE_DIR: a warm run takes seconds
    and uploads nothing new (`image base --rebuild` refreshes the Debian rootfs both use).
    Prints the image by digest.
    """
    from modelrelease.build.pipeline_image import PipelineImageBuilder
    from modelrelease.build.serving_base import load_recipe

    def build(client: RegistryClient, cache_dir: Path) -> ImageBuild:
        recipe_ = load_recipe(recipe)
        return PipelineImageBuilder(cache_dir, _progress).build(
            to, client, recipe=recipe_, requirements=requirements)

    _push_built(to, "pipeline image", build)


def _push_built(to: str, what: str,
                build: Callable[[RegistryClient, Path], ImageBuild]) -> None:
    """Build one of our own images and push it to ``to``; print it by digest.

    ``build(client, cache_dir)`` builds and pushes through the registry client made from the
    settings; its summary goes to the progress lines as ``what``. A ``PipelineError`` from
    the client or the build exits 2 with its message (``image base``, ``image pipeline``).
    """
    from modelrelease.adapters.oci_registry import RegistryClient
    from modelrelease.domain.reference import ImageRef
    from modelrelease.settings import PipelineSettings

    settings = PipelineSettings()
    try:
        with RegistryClient(settings.registry, progress=_progress) as client:
            built = build(client, settings.build.cache_dir)
            _progress(built.summary(what))
    except PipelineError as exc:
        raise _fail(exc) from None
    ref = ImageRef.parse(to)
    typer.echo(f"{ref.registry}/{ref.repository}@{built.digest}")


class DatabaseChoice(StrEnum):
    """``dev up --database``: where the stack's Prefect server and MLflow keep their data."""

    POSTGRESQL = "postgresql"
    SQLITE = "sqlite"


RootOption = Annotated[Path | None, typer.Option(
    help="where the stack keeps its state and logs [default: ~/.cache/modelrelease/stack]")]


def _print_env(env: dict[str, str]) -> None:
    import shlex

    for key, value in env.items():
        typer.echo(f"export {key}={shlex.quote(value)}")


@dev_app.command("up")
def dev_up(
    root: RootOption = None,
    gpus: Annotated[int, typer.Option(min=0, help="nvidia.com/gpu capacity of the node")] = 1,
    timeout: Annotated[float, typer.Option(help="seconds allowed per part")] = 300,
    node: Annotated[bool, typer.Option("--node/--no-node",
                                       help="start the node (needs root)")] = True,
    database: Annotated[DatabaseChoice, typer.Option(
        help="where Prefect's server and MLflow keep their data: the stack's own "
             "PostgreSQL, or sqlite files")] = DatabaseChoice.POSTGRESQL,
    metrics_server: Annotated[bool, typer.Option(
        "--metrics-server/--no-metrics-server",
        help="run metrics-server with the node (kubectl top; HorizontalPodAutoscalers act "
             "on CPU); its binary comes from scripts/metrics-server-assets")] = True,
) -> None:
    """Start the local stack in the background (or re-use a running one); print its env.

    The processes keep running after this command exits; `modelrelease dev down` stops them
    (the node's pods and host changes are undone too). The first run builds the serving
    base with mmdebstrap (minutes); later ones take it from the build cache. Use it as
    `eval "$(modelrelease dev up)"`.
    """
    from modelrelease_localstack.stack import Stack

    stack = Stack(root, gpus=gpus, detached=True, progress=_progress, node=node,
                  database=database.value, metrics_server=metrics_server)
    try:
        stack.up(timeout=timeout)
        env = stack.env()
    except PipelineError as exc:
        raise _fail(exc) from None
    _print_env(env)


@dev_app.command("status")
def dev_status(
    root: RootOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Show each process of the stack: up or down, PID, URL, resident memory.

    Exits 0 when every part is up, 1 when some are down (or the start did not finish), 3 when
    no stack is recorded.
    """
    from modelrelease_localstack.stack_state import DEFAULT_ROOT, stack_status

    where = root or DEFAULT_ROOT
    try:
        state, report = stack_status(where)
    except PipelineError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps({
            "root": str(where), "phase": state.phase if state else None,
            "components": [c.model_dump() for c in report],
            "rss_bytes": sum(c.rss_bytes for c in report),
        }))
    elif state is None:
        typer.echo(f"no stack in {where}; start one with `modelrelease dev up`", err=True)
    else:
        for c in report:
            typer.echo(f"{c.name:<24} {'up' if c.up else 'DOWN':<5} pid {c.pid:<8} "
                       f"{c.rss_bytes / 2**20:7.0f} MiB  {c.url or ''}")
        typer.echo(f"{'total':<24} {'':<5} {'':<12} "
                   f"{sum(c.rss_bytes for c in report) / 2**20:7.0f} MiB  "
                   f"({state.phase}, {where})")
    if state is None:
        raise typer.Exit(code=3)
    if state.phase != "up" or not report or not all(c.up for c in report):
        raise typer.Exit(code=1)


@dev_app.command("down")
def dev_down(root: RootOption = None) -> None:
    """Stop every process of the stack by its PID, in reverse start order (data stays)."""
    from modelrelease_localstack.stack_state import DEFAULT_ROOT, stop_stack

    where = root or DEFAULT_ROOT
    try:
        stopped = stop_stack(where, progress=_progress)
    except PipelineError as exc:
        raise _fail(exc) from None
    _progress(f"stack in {where} stopped ({len(stopped)} processes)" if stopped
              else f"nothing running in {where}")


@dev_app.command("env")
def dev_env(root: RootOption = None) -> None:
    """Print `export K=V` lines pointing clients at the running stack."""
    from modelrelease_localstack.stack_state import DEFAULT_ROOT, read_state, state_env, unhealthy

    where = root or DEFAULT_ROOT
    try:
        state = read_state(where)
        if state is None:
            raise StackError(f"read environment of stack {where}: no stack recorded; "
                             "run `modelrelease dev up`")
        problems = unhealthy(state)
        if problems:
            _progress(f"warning: stack in {where} is not healthy: {'; '.join(problems)}")
        env = state_env(state)
    except PipelineError as exc:
        raise _fail(exc) from None
    _print_env(env)


@dev_app.command("install")
def dev_install(
    root: RootOption = None,
    image: Annotated[str | None, typer.Option(
        help="the pipeline image, REGISTRY/REPO@sha256:... (default: build it into the "
             "stack's registry, as `modelrelease image pipeline` does)")] = None,
    endpoints: Annotated[Path | None, typer.Option(
        help="the folder of ModelEndpoint files the bridge and the flow runs read "
             "(default: release.endpoints_dir, deployments/endpoints)")] = None,
    timeout: Annotated[float, typer.Option(
        help="seconds allowed for the Deployments to roll out")] = 180,
) -> None:
    """Install the pipeline into the stack's cluster, as `kubectl apply -k` does on yours.

    Builds the pipeline image (cached), writes deployments/kubernetes-local/generated/ (the
    image, the stack's addresses as pods reach them, the ModelEndpoint files), applies
    deployments/kubernetes-local and waits for the Prefect worker and the webhook bridge.
    The webhook's secret is MODELRELEASE_WEBHOOK__SECRET when set, else the one already
    installed (the cluster's modelrelease/modelrelease-settings Secret), else a new one.
    """
    from modelrelease.settings import PipelineSettings
    from modelrelease_localstack.controlplane import kube_assets_dir
    from modelrelease_localstack.install import build_pipeline_image, install
    from modelrelease_localstack.stack_state import DEFAULT_ROOT, read_state

    where = root or DEFAULT_ROOT
    settings = PipelineSettings()
    try:
        state = read_state(where)
        if state is None or state.phase != "up":
            raise StackError(f"install pipeline into stack {where}: no stack up there; run "
                             "`modelrelease dev up`")
        secret = settings.webhook.secret
        done = install(state, image or build_pipeline_image(state, _progress),
                       kube_assets_dir() / "kubectl",
                       endpoints_dir=endpoints or settings.release.endpoints_dir,
                       webhook_secret=secret.get_secret_value() if secret else None,
                       timeout=timeout, progress=_progress)
    except PipelineError as exc:
        raise _fail(exc) from None
    _progress(f"installed {done.image} with {len(done.endpoints)} endpoint file(s) in "
              f"{done.seconds:.1f}s; Prefect at {done.settings['PREFECT_API_URL']} for pods")


@deployments_app.command("kubernetes")
def deployments_kubernetes(
    image: Annotated[str, typer.Option(
        help="the pipeline image, REGISTRY/REPO@sha256:... (`modelrelease image pipeline`)")],
    pool: Annotated[str, typer.Option(help="the Kubernetes work pool")] = "modelrelease-k8s",
    source: Annotated[Path, typer.Option(
        help="the prefect.yaml to start from")] = Path("deployments/prefect.yaml"),
) -> None:
    """Print prefect.yaml with its deployments run as Jobs of a Kubernetes work pool.

    Each deployment names the pool, the image as a job variable and a pull step into
    /opt/modelrelease (where the image holds the flows); parameters, triggers, schedules
    and limits stay. Deploy it from the checkout's root:

        modelrelease deployments kubernetes --image REF > prefect-kubernetes.yaml
        prefect deploy --all --prefect-file prefect-kubernetes.yaml
    """
    import yaml

    from modelrelease.domain.work_pools import for_kubernetes

    try:
        document = yaml.safe_load(source.read_text())
        derived = for_kubernetes(document, image=image, pool=pool)
    except (OSError, yaml.YAMLError, ValueError, AttributeError) as exc:
        typer.echo(f"error: kubernetes deployments from {source}: {exc}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(f"# {source}'s deployments as Jobs of the {pool} work pool "
               "(modelrelease deployments kubernetes)")
    typer.echo(yaml.safe_dump(derived, sort_keys=False), nl=False)


def _duration(value: str) -> float:
    from modelrelease.spec.values import parse_duration

    try:
        return parse_duration(value).total_seconds()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@jobs_app.command("watch")
def jobs_watch(
    namespace: Annotated[str, typer.Option(
        help="where the worker starts flow-run Jobs (its own namespace)")],
    grace: Annotated[float, typer.Option(
        parser=_duration, metavar="DURATION",
        help="how long a pod may fail to pull or create before its run fails")] = "2m",  # type: ignore[assignment]
    interval: Annotated[float, typer.Option(
        parser=_duration, metavar="DURATION", help="how often to look")] = "5s",  # type: ignore[assignment]
) -> None:
    """Fail flow runs whose Job's pod cannot start, with the kubelet's reason.

    A pod that cannot pull its image (or whose container cannot be created) is retried by
    the kubelet for ever and its run stays Pending. Once such a pod is GRACE old, this
    logs the kubelet's reason on the run, sets the run Failed with it and deletes the Job.
    Runs beside the worker (deployments/kubernetes/worker.yaml); needs PREFECT_API_URL.
    """
    import logging
    from datetime import timedelta

    from modelrelease.adapters.job_watch import PrefectRuns, watch
    from modelrelease.adapters.kube import KubeCluster
    from modelrelease.settings import PipelineSettings

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cluster, runs = KubeCluster(PipelineSettings().kube), PrefectRuns()
    except PipelineError as exc:
        raise _fail(exc) from None
    _progress(f"jobs watch: flow-run Jobs in {namespace}, every {interval:g} s; a pod that "
              f"cannot start for {grace:g} s fails its run at {runs.api_url}")
    watch(cluster, runs, namespace, timedelta(seconds=grace), interval)


@app.command("demo")
def demo(
    workdir: Annotated[Path | None, typer.Option(help="keep the demo's files here")] = None,
) -> None:
    """Run the demo: a real model from MLflow to a pushed, reproducible image."""
    _needs_the_local_stack("modelrelease demo")
    from modelrelease_localstack.demo import run_demo

    try:
        run_demo(workdir, say=typer.echo)
    except PipelineError as exc:
        raise _fail(exc) from None


@app.command("render")
def render(
    file: Annotated[Path, typer.Argument(help="a ModelEndpoint YAML file")],
    image: Annotated[str | None, typer.Option(help="image pinned by digest to render")] = None,
) -> None:
    """Print every Kubernetes object a release would apply (dry run, no cluster needed)."""
    from modelrelease.render import render_file

    try:
        typer.echo(render_file(file, image=image), nl=False)
    except PipelineError as exc:
        raise _fail(exc) from None


@app.command("release")
def release(
    file: Annotated[str, typer.Argument(help="a ModelEndpoint file or an endpoint name")],
    version: Annotated[int | None, typer.Option(help="release this model version")] = None,
    alias: Annotated[str | None, typer.Option(help="release the version with this alias")
                     ] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="print the plan (version, image, objects, canary steps, ETA) and "
                          "change nothing")] = False,
) -> None:
    """Release a model version: canary, judge, then promote or roll back.

    Exits 0 when promoted (or already released, or planned with --dry-run), 1 when rolled
    back, 2 on an error, 130 on Ctrl-C (a release in flight rolls back first); the last
    line is a JSON summary.
    """
    from pydantic import ValidationError

    from modelrelease.domain.rollout import ReleaseOutcome
    from modelrelease.release.driver import run_release
    from modelrelease.release.dry_run import plan_release
    from modelrelease.settings import PipelineSettings
    from modelrelease.spec import ReleaseRequest

    try:
        request = ReleaseRequest(endpoint=file, version=version, alias=alias, dry_run=dry_run)
        settings = PipelineSettings()
    except ValidationError as exc:
        reason = f"release {file}: {_invalid(exc)}"
        typer.echo(f"error: {reason}", err=True)
        typer.echo(json.dumps({"endpoint": file, "outcome": ReleaseOutcome.FAILED,
                                "reason": reason}))
        raise typer.Exit(code=2) from None
    try:
        if request.dry_run:
            planned = plan_release(request, settings, say=_progress)
            typer.echo(planned.report)
            typer.echo(planned.summary())
            return
        with _telling() as notify:
            result = run_release(request, settings, say=_progress, notify=notify)
    except PipelineError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        typer.echo(json.dumps({"endpoint": file, "outcome": ReleaseOutcome.FAILED,
                                "reason": exc.message}))
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt:  # a release in flight has rolled back by now (run_release)
        reason = (f"release {file}: interrupted (Ctrl-C); a release in flight was rolled "
                  f"back: `modelrelease status {file}` shows how it ended")
        typer.echo(f"error: {reason}", err=True)
        typer.echo(json.dumps({"endpoint": file, "outcome": ReleaseOutcome.FAILED,
                                "reason": reason}))
        raise typer.Exit(code=130) from None
    typer.echo(result.summary())
    if result.outcome is ReleaseOutcome.ROLLED_BACK:
        raise typer.Exit(code=1)


def _telling() -> AbstractContextManager[Notify | None]:
    """Tell Prefect each milestone (as the flows do) when it is configured, else nobody.

    ``PREFECT_API_URL`` set: each notice becomes an event on the endpoint's resource, for
    the automations of ``modelrelease notifications install``; one Prefect does not take
    is a warning on stderr, never a failed release.
    """
    import contextlib

    from modelrelease.adapters.prefect_events import prefect_api_url, telling

    try:
        prefect_api_url()
    except PipelineError:  # no Prefect configured: nobody to tell
        return contextlib.nullcontext(None)
    return telling(lambda line: typer.echo(f"warning: {line}", err=True))


_SERVICE_LINK = re.compile(r"_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_\d+_(TCP|UDP|SCTP)"
                           r"(_PROTO|_PORT|_ADDR)?)?)$")
"""Variables the kubelet sets for each Service of the namespace (enableServiceLinks)."""


def _invalid(exc: ValidationError) -> str:
    """The first problem with an option or a setting, naming it as the user writes it."""
    error = exc.errors(include_url=False)[0]
    loc = [str(part) for part in error["loc"]]
    if exc.title != "PipelineSettings":
        name = (f"--{loc[0]}" if loc[0] in ("version", "alias") else "FILE") if loc else ""
    else:
        name = "MODELRELEASE_" + "__".join(loc).upper()
        if error["type"] == "extra_forbidden":
            if _SERVICE_LINK.search(name):
                return (f"{name} is not a setting: Kubernetes sets it in pods for a Service "
                        "of the namespace; set `enableServiceLinks: false` in the pod's spec "
                        "(deployments/kubernetes does)")
            return f"{name} is not a setting: fix its name or unset it"
    message = str(error["msg"])
    return f"{name}: {message[:1].lower()}{message[1:]}" if name else message


@app.command("cost")
def cost(
    namespace: Annotated[str | None, typer.Option("--namespace", "-n",
                                                  help="one namespace (default: all)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
) -> None:
    """Cost per hour and per month of every endpoint: requests x replicas x price table."""
    from modelrelease.adapters.kube import KubeCluster
    from modelrelease.costs import endpoint_costs
    from modelrelease.settings import PipelineSettings

    settings = PipelineSettings()
    try:
        cluster = KubeCluster(settings.kube)
        try:
            costs = endpoint_costs(cluster, settings, namespace)
        finally:
            cluster.close()
    except PipelineError as exc:
        raise _fail(exc) from None
    for item in costs:
        if as_json:
            typer.echo(json.dumps({
                "namespace": item.namespace, "name": item.name,
                "primary_replicas": item.primary_replicas,
                "canary_replicas": item.canary_replicas, "gpus": item.gpus,
                "gpus_used": item.gpu_usage.used if item.gpu_usage else None,
                "primary_per_hour": item.primary_per_hour,
                "canary_per_hour": item.canary_per_hour, "per_hour": item.per_hour,
                "per_month": item.per_month}))
        else:
            typer.echo(f"{item.namespace}/{item.name}: {item.per_hour:.4f}/h "
                       f"({item.per_month:.2f}/month): primary {item.primary_replicas} "
                       f"replica(s) {item.primary_per_hour:.4f}/h, canary "
                       f"{item.canary_replicas} replica(s) {item.canary_per_hour:.4f}/h, "
                       + (item.gpu_usage.describe() if item.gpu_usage else "0 GPU(s)"))
    if not as_json:
        total = sum(c.per_hour for c in costs)
        typer.echo(f"total: {total:.4f}/h ({total * 730:.2f}/month) for {len(costs)} endpoint(s)")


def _endpoint_file(what: str, file: str) -> ModelEndpoint:
    """The endpoint a FILE or name argument means (a name: NAME.yaml in the endpoints dir).

    Raises:
        typer.Exit: (code 2) the file is missing or invalid.
    """
    from modelrelease.settings import PipelineSettings
    from modelrelease.spec import ReleaseRequest, load_endpoint

    settings = PipelineSettings()
    path = ReleaseRequest(endpoint=file).endpoint_file(settings.release.endpoints_dir)
    try:
        if not path.is_file():
            raise InvalidInput(f"{what} {file}: no endpoint file {path}; give a ModelEndpoint "
                               "file or the name of one in MODELRELEASE_RELEASE__ENDPOINTS_DIR "
                               f"({settings.release.endpoints_dir})")
        return load_endpoint(path)
    except PipelineError as exc:
        raise _fail(exc) from None


def _endpoint_record(what: str, file: str) -> tuple[str, str, ModelEndpointStatus | None]:
    """The endpoint a FILE or name argument means, and its status in the cluster.

    Raises:
        typer.Exit: (code 2) the file is missing or invalid, or the cluster cannot be read.
    """
    from modelrelease.adapters.kube import KubeCluster
    from modelrelease.release.kube_endpoint import endpoint_status
    from modelrelease.settings import PipelineSettings

    endpoint = _endpoint_file(what, file)
    try:
        cluster = KubeCluster(PipelineSettings().kube)
        try:
            return endpoint.namespace, endpoint.name, endpoint_status(cluster, endpoint)
        finally:
            cluster.close()
    except PipelineError as exc:
        raise _fail(exc) from None


def _operator(by: str | None) -> str:
    """Who acts, for the record: ``--by``, or USER@HOST."""
    import getpass
    import socket

    return by or f"{getpass.getuser()}@{socket.gethostname()}"


@app.command("abort")
def abort(
    file: Annotated[str, typer.Argument(help="a ModelEndpoint file or an endpoint name")],
    by: Annotated[str | None, typer.Option(
        help="who aborts, recorded in the status (default: USER@HOST)")] = None,
    wait: Annotated[float, typer.Option(
        min=0, help="seconds to wait for the release to roll back (0: ask and return)")
                    ] = 120.0,
) -> None:
    """Stop the endpoint's release in flight: its canary goes, the primary stays as it is.

    The release rolls back at its next action (the status's reason says who aborted) and
    releases the endpoint's lock. Exits 0 once it has rolled back (or, with --wait 0, once
    asked), 1 if it ended otherwise or did not answer in time, 2 when nothing is in flight.
    """
    import time

    from modelrelease.adapters.kube import KubeCluster
    from modelrelease.domain.rollout import abortable
    from modelrelease.release.kube_endpoint import KubeEndpoint
    from modelrelease.settings import PipelineSettings

    endpoint = _endpoint_file("abort", file)
    where = f"{endpoint.namespace}/{endpoint.name}"
    who = _operator(by)
    try:
        cluster = KubeCluster(PipelineSettings().kube)
        try:
            record = KubeEndpoint(endpoint, cluster)
            status = record.read_status()
            if status is None or status.phase is None or not abortable(status.phase) \
                    or not status.release_id:
                phase = status.phase if status and status.phase else "never released"
                typer.echo(f"error: abort {where}: nothing in flight (phase {phase}); "
                           "nothing changed", err=True)
                raise typer.Exit(code=2)
            release_id = status.release_id
            record.request_abort(release_id, who)
            canary = status.canary.version if status.canary else "?"
            _progress(f"{where}: asked release {release_id} (version {canary}, {status.phase})"
                      f" to stop, as {who}")
            deadline = time.monotonic() + wait
            while wait > 0:
                now = record.read_status()
                if now is None or now.release_id != release_id or (
                        now.phase is not None and now.phase.terminal):
                    break
                if time.monotonic() > deadline:
                    typer.echo(f"error: abort {where}: release {release_id} did not answer "
                               f"within {wait:.0f}s (still {now.phase}); if its process died, "
                               f"the next `modelrelease release` of {where} rolls it back",
                               err=True)
                    raise typer.Exit(code=1)
                time.sleep(0.5)
        finally:
            cluster.close()
    except PipelineError as exc:
        raise _fail(exc) from None
    if wait == 0:
        return
    ended = now.phase if now else None
    typer.echo(json.dumps({"endpoint": where, "release_id": release_id,
                           "phase": str(ended) if ended else None,
                           "reason": now.reason if now else None}))
    if now is None or now.release_id != release_id or f"aborted by {who}" not in (
            now.reason or ""):
        raise typer.Exit(code=1)  # it ended another way (promoted before the ask, ...)


@app.command("approve")
def approve(
    file: Annotated[str, typer.Argument(help="a ModelEndpoint file or an endpoint name")],
    reject: Annotated[bool, typer.Option(
        "--reject", help="reject the step instead: the release rolls back")] = False,
    by: Annotated[str | None, typer.Option(
        help="who answers, recorded in the report and tags (default: USER@HOST)")] = None,
    comment: Annotated[str, typer.Option(
        help="why; it lands in the release report and the MLflow tags")] = "",
) -> None:
    """Answer the approval gate the endpoint's release waits at, as the Prefect UI's form does.

    The release must be in phase AwaitingApproval, run by Prefect (PREFECT_API_URL names
    the server). Approving lets it go on; --reject rolls it back with your comment as the
    reason. Exits 0 once Prefect took the answer, 2 when nothing waits or it was refused;
    the last line is JSON.
    """
    from modelrelease.adapters.kube import KubeCluster
    from modelrelease.adapters.prefect_answers import PrefectAnswers
    from modelrelease.domain.approval import Decision, approval_key
    from modelrelease.release.kube_endpoint import KubeEndpoint
    from modelrelease.settings import PipelineSettings
    from modelrelease.spec import ReleasePhase

    endpoint = _endpoint_file("approve", file)
    where = f"{endpoint.namespace}/{endpoint.name}"
    decision = Decision.REJECT if reject else Decision.APPROVE
    who = _operator(by)
    try:
        cluster = KubeCluster(PipelineSettings().kube)
        try:
            status = KubeEndpoint(endpoint, cluster).read_status()
        finally:
            cluster.close()
        if status is None or status.phase is not ReleasePhase.AWAITING_APPROVAL \
                or not status.release_id or status.step is None:
            phase = status.phase if status and status.phase else "never released"
            raise InvalidInput(f"approve {where}: nothing waits for approval (phase {phase}); "
                               "nothing changed")
        step = status.step + 1
        with PrefectAnswers() as answers:
            run = answers.answer(approval_key(status.release_id, step), decision, who,
                                 comment)
    except PipelineError as exc:
        raise _fail(exc) from None
    answered = "approved" if decision is Decision.APPROVE else "rejected"
    _progress(f"{where}: step {step} {answered} as {who} (flow run {run['name']})")
    typer.echo(json.dumps({"endpoint": where, "release_id": status.release_id, "step": step,
                           "decision": decision.value, "flow_run": run["id"]}))


@app.command("rollback")
def rollback(
    file: Annotated[str, typer.Argument(help="a ModelEndpoint file or an endpoint name")],
    to: Annotated[int | None, typer.Option(
        min=1, help="go back to this version (default: the last verified release)")] = None,
    by: Annotated[str | None, typer.Option(
        help="who rolls back, recorded in the status and tags (default: USER@HOST)")] = None,
) -> None:
    """Switch the endpoint's primary back to an earlier verified release, skipping analysis.

    The target is the newest version this endpoint promoted that was not rolled back since
    (or --to VERSION, one of those). Exits 0 once the primary serves it, 1 if it did not
    become ready (nothing switched), 2 when refused (the message lists the valid targets;
    nothing changed). The last line is a JSON summary.
    """
    from modelrelease.errors import KubeApiError
    from modelrelease.release.rollback import run_rollback
    from modelrelease.settings import PipelineSettings

    endpoint = _endpoint_file("rollback", file)
    who = _operator(by)
    try:
        result = run_rollback(endpoint, str(to) if to is not None else None, who,
                              PipelineSettings(), say=_progress)
        with _telling() as notify:
            if notify is not None:
                notify(result.notification)
    except KubeApiError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(code=1) from None
    except PipelineError as exc:
        raise _fail(exc) from None
    typer.echo(result.summary())


@app.command("status")
def status(
    file: Annotated[str | None, typer.Argument(
        help="a ModelEndpoint file or an endpoint name (default: every endpoint)")] = None,
    namespace: Annotated[str | None, typer.Option(
        "--namespace", "-n", help="without FILE: one namespace (default: all)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, fields in full")
                       ] = False,
) -> None:
    """Where each endpoint's release stands.

    Phase, primary and canary (version @digest), canary weight, last verdict (outcome and
    first reason), cost per hour.
    """
    from modelrelease.adapters.kube import KubeCluster
    from modelrelease.domain.status_view import (
        STATUS_COLUMNS,
        status_json,
        status_row,
        text_table,
    )
    from modelrelease.release.kube_endpoint import endpoint_statuses
    from modelrelease.settings import PipelineSettings

    if file is not None and namespace is not None:
        typer.echo("error: status: give FILE or --namespace, not both (FILE names its own "
                   "namespace)", err=True)
        raise typer.Exit(code=2)
    if file is not None:
        records = [_endpoint_record("status", file)]
    else:
        settings = PipelineSettings()
        try:
            cluster = KubeCluster(settings.kube)
            try:
                records = endpoint_statuses(cluster, namespace)
            finally:
                cluster.close()
        except PipelineError as exc:
            raise _fail(exc) from None
    if as_json:
        for record in records:
            typer.echo(json.dumps(status_json(*record)))
        return
    if not records:
        typer.echo(f"no ModelEndpoint in {namespace or 'any namespace'} yet")
        return
    typer.echo(text_table(STATUS_COLUMNS, [status_row(*record) for record in records]))


@app.command("history")
def history(
    file: Annotated[str, typer.Argument(help="a ModelEndpoint file or an endpoint name")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
) -> None:
    """An endpoint's past releases, newest first: id, version, outcome, digest, when, why."""
    from modelrelease.domain.status_view import HISTORY_COLUMNS, history_rows, text_table

    namespace, name, record = _endpoint_record("history", file)
    rows = history_rows(record)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    if not rows:
        typer.echo(f"{namespace}/{name}: no release yet")
        return
    typer.echo(text_table(HISTORY_COLUMNS, rows))


def _webhook_settings(what: str) -> tuple[PipelineSettings, SecretStr]:
    """Settings with a webhook secret, or a plain error naming the variable to set."""
    from pydantic import ValidationError

    from modelrelease.adapters.prefect_secrets import with_secret_blocks
    from modelrelease.settings import PipelineSettings

    try:
        settings = PipelineSettings()
    except ValidationError as exc:
        typer.echo(f"error: {what}: {_invalid(exc)}", err=True)
        raise typer.Exit(code=2) from None
    try:
        settings = with_secret_blocks(settings)  # MODELRELEASE_WEBHOOK__SECRET_BLOCK
    except PipelineError as exc:
        raise _fail(exc) from None
    secret = settings.webhook.secret
    if secret is None or not secret.get_secret_value():
        typer.echo(f"error: {what}: no webhook secret: set MODELRELEASE_WEBHOOK__SECRET "
                   "(the same value for `webhook serve` and `webhook register`)", err=True)
        raise typer.Exit(code=2)
    return settings, secret


def email_block(email_to: list[str] | None, email_from: str | None, smtp_host: str | None,
                smtp_port: int, smtp_security: SmtpSecurity, smtp_ca_file: Path | None,
                smtp_user: str | None, password: str | None) -> SmtpEmail | None:
    """``notifications install``'s e-mail options as the block to save (None: no e-mail).

    Raises:
        InvalidInput: options that do not go together, or a value the block refuses.
    """
    from pydantic import ValidationError

    from modelrelease.adapters.email_block import SmtpEmail

    if not email_to:
        if any((email_from, smtp_host, smtp_user, smtp_ca_file)):
            raise InvalidInput("notifications install: the SMTP options need --email-to; "
                               "nothing installed")
        return None
    missing = [flag for flag, value in (("--smtp-host", smtp_host),
                                        ("--email-from", email_from)) if not value]
    if missing:
        raise InvalidInput(f"notifications install: --email-to needs "
                           f"{' and '.join(missing)}; nothing installed")
    if smtp_user and not password:
        raise InvalidInput("notifications install: --smtp-user needs its password in "
                           "MODELRELEASE_SMTP_PASSWORD; nothing installed")
    try:
        return SmtpEmail(host=smtp_host, port=smtp_port, security=smtp_security,
                         ca_file=str(smtp_ca_file) if smtp_ca_file else None,
                         username=smtp_user, password=password if smtp_user else None,
                         sender=email_from, to=email_to)
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise InvalidInput(f"notifications install: {'.'.join(map(str, problem['loc']))}: "
                           f"{problem['msg']}; nothing installed") from None


@notifications_app.command("install")
def notifications_install(
    webhook_url: Annotated[str | None, typer.Option(
        help="a Slack (or compatible) incoming-webhook URL: each milestone is posted to it "
             "as {\"text\": ...}")] = None,
    email_to: Annotated[list[str] | None, typer.Option(
        help="an e-mail recipient (repeatable); needs --smtp-host and --email-from")] = None,
    email_from: Annotated[str | None, typer.Option(help="the e-mails' From address")] = None,
    smtp_host: Annotated[str | None, typer.Option(help="the SMTP server")] = None,
    smtp_port: Annotated[int, typer.Option(min=1, max=65535, help="its port")] = 587,
    smtp_security: Annotated[SmtpSecurity, typer.Option(
        help="starttls (refused if the server cannot) or none (plain: a relay on the same "
             "host or network only)")] = SmtpSecurity.STARTTLS,
    smtp_ca_file: Annotated[Path | None, typer.Option(
        help="a CA bundle to trust for the SMTP server (default: the system's)")] = None,
    smtp_user: Annotated[str | None, typer.Option(
        help="SMTP login; the password is read from MODELRELEASE_SMTP_PASSWORD")] = None,
    file: Annotated[Path, typer.Option(help="the automations to install")] = Path(
        "deployments/notifications.yaml"),
) -> None:
    """Install the notification automations into the Prefect server in PREFECT_API_URL.

    Saves a notification block per channel given (modelrelease-webhook,
    modelrelease-email), then creates the file's automations for those channels, replacing
    any of the same name. Each release milestone (started, step passed, promoted, rolled
    back, aborted, drill passed or failed) then becomes one message per channel, with the
    endpoint, version, reason and a link to the flow run. Prints one JSON line per
    automation.
    """
    import os
    from dataclasses import asdict

    from modelrelease.adapters.prefect_automations import install

    try:
        email = email_block(email_to, email_from, smtp_host, smtp_port, smtp_security,
                            smtp_ca_file, smtp_user, os.environ.get("MODELRELEASE_SMTP_PASSWORD"))
        installed = install(file, webhook_url, email)
    except PipelineError as exc:
        raise _fail(exc) from None
    for automation in installed:
        _progress(f"automation {automation.name} ({automation.id}): every milestone to "
                  f"block {automation.block}")
        typer.echo(json.dumps(asdict(automation)))


@webhook_app.command("serve")
def webhook_serve(
    host: Annotated[str | None, typer.Option(help="address to bind (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="default 8765")] = None,
) -> None:
    """Receive MLflow webhooks on POST /webhook and post release events to Prefect.

    Needs MODELRELEASE_WEBHOOK__SECRET and PREFECT_API_URL; reads the ModelEndpoint files
    in MODELRELEASE_RELEASE__ENDPOINTS_DIR on every delivery.
    """
    import logging

    import uvicorn

    from modelrelease.adapters.prefect_events import PrefectEvents
    from modelrelease.adapters.webhook import WEBHOOK_PATH, WebhookReceiver
    from modelrelease.spec import load_endpoints

    settings, _ = _webhook_settings("serve webhook")
    config = settings.webhook
    folder = settings.release.endpoints_dir
    try:
        endpoints = load_endpoints(folder)  # a bad folder fails now, not at the first delivery
        events = PrefectEvents()
        receiver = WebhookReceiver(config, folder, events)
    except PipelineError as exc:
        raise _fail(exc) from None
    bind_host, bind_port = host or config.host, port or config.port
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _progress(f"webhook: POST http://{bind_host}:{bind_port}{WEBHOOK_PATH} -> "
              f"{events.api_url}/events; {len(endpoints)} endpoint(s) in {folder}")
    try:
        uvicorn.run(receiver, host=bind_host, port=bind_port, lifespan="on",
                    log_level="info")
    finally:
        events.close()


@webhook_app.command("register")
def webhook_register(
    url: Annotated[str, typer.Option(help="the receiver's URL as MLflow reaches it, "
                                          "e.g. https://hooks.example.com/webhook")],
    name: Annotated[str, typer.Option(help="the MLflow webhook's name")] = "modelrelease",
    event: Annotated[list[str] | None, typer.Option(
        help="an MLflow event to subscribe to (repeatable); default: the events that "
             "start releases, model_version_alias.created and model_version.created")] = None,
) -> None:
    """Create (or update) the MLflow webhook that calls `webhook serve`, with the secret."""
    from modelrelease.adapters.webhook import register_webhook
    from modelrelease.domain.webhook import RELEASING

    settings, secret = _webhook_settings(f"register webhook {name}")
    events = tuple(event or sorted(RELEASING))
    try:
        webhook_id, action = register_webhook(settings.mlflow, url, secret, name=name,
                                              events=events)
    except PipelineError as exc:
        raise _fail(exc) from None
    typer.echo(json.dumps({"webhook_id": webhook_id, "name": name, "url": url,
                           "events": list(events), "action": action}))


@app.command("version")
def version() -> None:
    """Print the version."""
    from modelrelease import __version__

    typer.echo(json.dumps({"modelrelease": __version__, "python": sys.version.split()[0]}))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
