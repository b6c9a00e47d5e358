"""Every kind of bad input, through ``modelrelease release``, on the real stack: one table.

Each case runs the real command (exit code 2) against an endpoint that already has a
promoted primary, and must (1) say what is wrong and how to fix it (key words per case)
and (2) change nothing: the endpoint namespace's objects, both registries' tags and every
MLflow model's versions, aliases and tags are the same after as before. The last line
printed is ``{"bad_inputs_tried": N, "clear_error_no_change": M}``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from modelrelease.adapters.kube import KubeCluster
from modelrelease.cli import app
from modelrelease.settings import KubeConfig
from modelrelease_localstack.demo_model import register_iris_model
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import Endpoint, make_endpoint
from tests.e2e.test_rbac import SA, SA_NAMESPACE, _documents, pipeline_kubeconfig  # noqa: F401
from tests.security.support import (
    LENIENT,
    diff,
    endpoint_world,
    kubeconfig_to,
    register_bare_model,
    registry_state,
)
from tests.support import REGISTRY_USER, Services

pytestmark = [pytest.mark.e2e, pytest.mark.security]
DROP = object()


@dataclass
class Bench:
    """An endpoint with a promoted primary (v1), a v2, a model without example, RBAC minus one."""

    endpoint: Endpoint
    document: dict[str, Any]
    folder: Path
    bare_model: str
    pipeline_kubeconfig: Path
    services: Services
    local_registry: str
    admin: KubeCluster

    def env(self) -> dict[str, str | None]:
        settings = self.endpoint.settings
        return {"MODELRELEASE_KUBE__KUBECONFIG": str(settings.kube.kubeconfig),
                "MODELRELEASE_MLFLOW__TRACKING_URI": str(settings.mlflow.tracking_uri),
                "MODELRELEASE_BUILD__CACHE_DIR": str(settings.build.cache_dir),
                "MODELRELEASE_RELEASE__ENDPOINTS_DIR": str(self.folder),
                "MODELRELEASE_RELEASE__WAIT_FOR_LOCK_S": "0"}

    def snapshot(self) -> dict[str, Any]:
        """The cluster, registries and MLflow, less what other tests' endpoints own
        (``endpoint_world``: the other stack part releases its own meanwhile)."""
        secure = self.services.secure_registry
        made = self.endpoint
        return {**endpoint_world(self.admin, f"http://{self.local_registry}",
                                 str(made.settings.mlflow.tracking_uri),
                                 namespace=made.namespace, name=made.name, model=made.model),
                "secure-registry": registry_state(f"https://{secure.host}",
                                                  auth=(REGISTRY_USER, _password()),
                                                  ca_file=secure.ca_cert)}


def _password() -> str:
    from tests.support import REGISTRY_PASSWORD

    return REGISTRY_PASSWORD


@dataclass(frozen=True)
class Case:
    """One bad input: how to make it, and the words its error must hold."""

    id: str
    words: tuple[str, ...]
    edits: tuple[tuple[str, Any], ...] = ()
    text: str | None = None
    args: tuple[str, ...] = ()
    env: Callable[[Bench], dict[str, str | None]] = field(default=lambda bench: {})
    target: Callable[[Bench, Path], str] = field(default=lambda bench, path: str(path))


def _edit(document: dict[str, Any], path: str, value: Any) -> None:
    node: Any = document
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if value is DROP:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def _case(id: str, words: str, *edits: tuple[str, Any], **more: Any) -> Case:
    return Case(id, tuple(w.lower() for w in words.split("|")), edits, **more)


CASES: list[Case] = [
    # --- the file: not YAML, not a ModelEndpoint --------------------------------------------
    _case("yaml-syntax", "line 3|not valid YAML",
          text="apiVersion: modelrelease.io/v1alpha1\nmetadata: {name: x\nspec: [\n"),
    _case("yaml-empty", "empty|expected a ModelEndpoint", text=""),
    _case("yaml-not-a-mapping", "expected a ModelEndpoint mapping", text="- a\n- b\n"),
    _case("file-missing", "cannot read|check the path|ENDPOINTS_DIR",
          target=lambda bench, path: "no-such-endpoint"),
    _case("api-version", "apiVersion|must be 'modelrelease.io/v1alpha1'",
          ("apiVersion", "modelrelease.io/v1")),
    _case("kind", "kind|must be 'ModelEndpoint'", ("kind", "Deployment")),
    # --- every kind of invalid field --------------------------------------------------------
    _case("unknown-field", "autoscaling.replics|unknown field|did you mean|allowed: minReplicas",
          ("spec.autoscaling.replics", 3)),
    _case("missing-field", "spec.resources|required|e.g. resources:", ("spec.resources", DROP)),
    _case("wrong-type", "minReplicas|must be a whole number|\"two\"",
          ("spec.autoscaling.minReplicas", "two")),
    _case("out-of-range", "maxErrorRate|at most 1|1.5",
          ("spec.canary.checks.maxErrorRate", 1.5)),
    _case("duration", "steps[0].hold|not a duration|e.g. 30s",
          ("spec.canary.steps", [{"weight": 50, "hold": "soon"}])),
    _case("duration-negative", "hold|negative", ("spec.canary.steps",
                                                 [{"weight": 50, "hold": "-5s"}])),
    _case("hold-zero", "hold|0s collects no requests|e.g. 30s",
          ("spec.canary.steps", [{"weight": 50, "hold": 0}])),
    _case("weight-zero", "weight|weight 0|start at 1",
          ("spec.canary.steps", [{"weight": 0, "hold": "10s"}])),
    _case("weights-not-increasing", "steps[1].weight|greater than step 0",
          ("spec.canary.steps", [{"weight": 50, "hold": "10s"}, {"weight": 20, "hold": "10s"}])),
    _case("replicas-order", "minReplicas|at most maxReplicas|raise maxReplicas",
          ("spec.autoscaling.minReplicas", 3), ("spec.autoscaling.maxReplicas", 2)),
    _case("percentile-order", "p95Ms|at most p99Ms", ("spec.canary.checks.latency.p95Ms", 900),
          ("spec.canary.checks.latency.p99Ms", 100)),
    _case("cpu-quantity", "resources.cpu|not a Kubernetes quantity|e.g. 500m",
          ("spec.resources.cpu", "lots")),
    _case("memory-unit", "resources.memory|write the unit|512Mi",
          ("spec.resources.memory", "512")),
    _case("accelerator-name", "accelerators|DOMAIN/NAME|nvidia.com/gpu",
          ("spec.resources.accelerators", {"gpu": 1})),
    _case("selector-none", "spec.model|names no version|alias: champion",
          ("spec.model.alias", DROP)),
    _case("selector-two", "spec.model|keep exactly one", ("spec.model.version", 1)),
    _case("alias-reserved", "spec.model.alias|reserved|pick another", ("spec.model.alias",
                                                                       "latest")),
    _case("model-name", "spec.model.name|not a registered model name|e.g. iris-clf",
          ("spec.model.name", "team/iris")),
    _case("stage-unknown", "spec.model.stage|must be", ("spec.model.alias", DROP),
          ("spec.model.stage", "Archived")),
    _case("repository-tagged", "image.repository|tag or digest|write the repository alone",
          ("spec.image.repository", "127.0.0.1:5000/e2e/x:v1")),
    _case("base-unpinned", "image.base|no tag or digest|pin it",
          ("spec.image.base", "127.0.0.1:5000/ml/serving-base")),
    _case("cron", "drill.schedule|fields|e.g.", ("spec.drill", {"schedule": "every monday"})),
    _case("samples-path", "agreement.samples|not a path inside|e.g.",
          ("spec.canary.checks.agreement", {"samples": "../etc/passwd.csv"})),
    _case("endpoint-name", "metadata.name|not a valid Kubernetes name|e.g. \"iris-model\"",
          ("metadata.name", "Iris_Model")),
    _case("endpoint-name-long", "metadata.name|characters|shorten it", ("metadata.name",
                                                                         "a" * 60)),
    _case("namespace-name", "metadata.namespace|not a valid namespace|e.g. \"ml-prod\"",
          ("metadata.namespace", "ML_prod")),
    # --- options and settings ---------------------------------------------------------------
    _case("cli-endpoint-name", "FILE|not a valid Kubernetes name|e.g. \"bad-name\"",
          target=lambda bench, path: "Bad_Name"),
    _case("cli-version-zero", "--version|greater than or equal to 1", args=("--version", "0")),
    _case("cli-alias-reserved", "--alias|reserved|pick another", args=("--alias", "latest")),
    _case("cli-version-and-alias", "sets version and alias|keep one",
          args=("--version", "1", "--alias", "champion")),
    _case("setting-typo", "MODELRELEASE_REGSITRY__USERNAME|not a setting|fix its name",
          env=lambda bench: {"MODELRELEASE_REGSITRY__USERNAME": "ci"}),
    # --- MLflow -----------------------------------------------------------------------------
    _case("unknown-model", "resolve model|not found|register it in MLflow|spec.model",
          ("spec.model.name", "no-such-model")),
    _case("unknown-version", "version=999|not found|register it in MLflow|spec.model",
          ("spec.model.alias", DROP), ("spec.model.version", 999)),
    _case("unknown-alias", "alias nope|register it in MLflow|spec.model",
          ("spec.model.alias", "nope")),
    _case("unknown-alias-option", "alias gone|register it in MLflow|--alias",
          args=("--alias", "gone")),
    _case("unknown-stage", "in stage Production|register it in MLflow|spec.model",
          ("spec.model.alias", DROP), ("spec.model.stage", "Production")),
    # --- the image --------------------------------------------------------------------------
    _case("base-missing", "base image|not found|push the serving base|spec.image.base",
          args=("--version", "2"), target=lambda bench, path: str(_rewrite(
              bench, path, ("spec.image.base",
                            f"{bench.local_registry}/ml/serving-base@sha256:{'0' * 64}"))),),
    _case("registry-credentials", "401|check the registry credentials|REGISTRY__USERNAME/PASSWORD",
          args=("--version", "2"),
          env=lambda bench: {"MODELRELEASE_REGISTRY__USERNAME": REGISTRY_USER,
                             "MODELRELEASE_REGISTRY__PASSWORD": "not-the-password",
                             "MODELRELEASE_REGISTRY__CA_FILE":
                                 str(bench.services.secure_registry.ca_cert)},
          target=lambda bench, path: str(_rewrite(
              bench, path,
              ("spec.image.repository", f"{bench.services.secure_registry.host}/e2e/x"),
              ("spec.image.base", bench.services.secure_base)))),
    # --- the cluster ------------------------------------------------------------------------
    _case("namespace-missing", "namespace|does not exist|kubectl create namespace",
          ("metadata.namespace", "no-such-namespace")),
    _case("rbac-one-verb", "forbidden|delete deployments.apps|rbac.yaml",
          args=("--version", "2"),
          env=lambda bench: {"MODELRELEASE_KUBE__KUBECONFIG": str(bench.pipeline_kubeconfig)}),
    _case("kubeconfig-missing-file", "load kubeconfig|MODELRELEASE_KUBE__KUBECONFIG",
          env=lambda bench: {"MODELRELEASE_KUBE__KUBECONFIG": "/nonexistent/kubeconfig"}),
    _case("kubeconfig-unreachable", "unreachable|127.0.0.1:1|MODELRELEASE_KUBE__KUBECONFIG",
          env=lambda bench: {"MODELRELEASE_KUBE__RETRIES": "1",
                             "MODELRELEASE_KUBE__KUBECONFIG": str(kubeconfig_to(
                                 Path(str(bench.endpoint.settings.kube.kubeconfig)),
                                 "https://127.0.0.1:1", bench.folder / "nowhere.kubeconfig"))}),
    _case("kube-context-missing", "context|nope|MODELRELEASE_KUBE__CONTEXT",
          env=lambda bench: {"MODELRELEASE_KUBE__CONTEXT": "nope"}),
    # --- the model itself -------------------------------------------------------------------
    _case("no-signature-no-input-example", "no input example|input_example=|"
          "requireInputExample: false", target=lambda bench, path: str(_rewrite(
              bench, path, ("spec.model.name", bench.bare_model)))),
]


def _rewrite(bench: Bench, path: Path, *edits: tuple[str, Any]) -> Path:
    document = copy.deepcopy(bench.document)
    for where, value in edits:
        _edit(document, where, value)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def bench(stack: Stack, crd: None, services: Services, pipeline_kubeconfig: Path,  # noqa: F811
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    tmp = tmp_path_factory.mktemp("bad-input")
    endpoint = make_endpoint(stack, tmp, checks=LENIENT)
    tracking = str(endpoint.settings.mlflow.tracking_uri)
    register_iris_model(tracking, endpoint.model, alias="champion")
    for _ in range(2):  # a busy 2-core machine may roll a first release back: again
        result = endpoint.release()
        if result.outcome == "promoted":
            break
    assert result.outcome == "promoted", result.reason
    register_iris_model(tracking, endpoint.model, c=0.5)  # version 2, not released
    bare = f"bare-{endpoint.name}"
    register_bare_model(tracking, bare)
    admin = KubeCluster(KubeConfig(kubeconfig=stack.kubeconfig))
    # the pipeline's role, less one verb: deleting Deployments (a canary could not be removed)
    (role,) = [d for d in _documents()
               if d["kind"] == "ClusterRole" and d["metadata"]["name"] == SA]
    role = copy.deepcopy(role)
    role["metadata"]["name"] = f"{SA}-no-delete-{endpoint.name}"
    for rule in role["rules"]:
        if "deployments" in rule["resources"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != "delete"]
    admin.apply(role)
    admin.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                 "metadata": {"name": "pipeline-no-delete", "namespace": endpoint.namespace},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                             "name": role["metadata"]["name"]},
                 "subjects": [{"kind": "ServiceAccount", "name": SA, "namespace": SA_NAMESPACE}]})
    folder = tmp / "endpoints"
    folder.mkdir()
    env = stack.env()
    try:
        yield Bench(endpoint, yaml.safe_load(endpoint.file.read_text()), folder, bare,
                    pipeline_kubeconfig, services, env["LOCAL_REGISTRY"], admin)
    finally:
        admin.delete("rbac.authorization.k8s.io/v1", "ClusterRole", role["metadata"]["name"])
        endpoint.core.delete_namespace(endpoint.namespace)
        admin.close()


def _attempt(bench: Bench, case: Case) -> tuple[int, str, str]:
    path = bench.folder / f"{case.id}.yaml"
    if case.text is not None:
        path.write_text(case.text)
    else:
        _rewrite(bench, path, *case.edits)
    target = case.target(bench, path)
    result = CliRunner().invoke(app, ["release", target, *case.args],
                                env={**bench.env(), **case.env(bench)})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stderr, result.stdout


def test_every_bad_input_fails_clearly_and_changes_nothing(bench: Bench) -> None:
    failures: list[str] = []
    clear = 0
    before = bench.snapshot()
    for case in CASES:
        code, stderr, stdout = _attempt(bench, case)
        after = bench.snapshot()
        errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
        message = "\n".join(errors)
        print(f"[{case.id}] exit {code}: {message}")
        problems = []
        if code != 2:
            problems.append(f"exit code {code}, not 2")
        missing = [w for w in case.words if w not in message.lower()]
        if missing:
            problems.append(f"message lacks {missing}")
        last = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else {}
        if last.get("outcome") != "failed":
            problems.append(f"last line is not a failed summary: {stdout[-300:]!r}")
        for part in before:
            problems += [f"{part} changed: {line}" for line in diff(before[part], after[part])]
        if problems:
            failures.append(f"{case.id}: " + "; ".join(problems))
            before = after
        else:
            clear += 1
    print(json.dumps({"bad_inputs_tried": len(CASES), "clear_error_no_change": clear}))
    assert not failures, "\n".join(failures)
