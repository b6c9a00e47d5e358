"""Session-wide real services: one local stack (and one extra TLS registry) per test run.

Everything binds to 127.0.0.1; every process is stopped by its PID at session end.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelrelease.adapters.oci_registry import RegistryClient
from modelrelease.build.serving_base import build_serving_base
from modelrelease.settings import PipelineSettings, RegistryConfig
from modelrelease_localstack.registry import LocalRegistry
from modelrelease_localstack.stack import Stack
from tests.shared_stack import shared_root, shared_stack, wait_for_guest
from tests.support import REGISTRY_PASSWORD, REGISTRY_USER, Cluster, Deployed, Services

# Keep MLflow's client from retrying for minutes when a test points it at nothing.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


# The session fixtures that start or use the local stack; a test that asks for any of them
# (directly or through another fixture) needs the stack.
STACK_FIXTURES = frozenset({"stack", "services", "cluster", "crd", "deployed",
                            "metrics_server"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--part", choices=("all", "stack", "stack-a", "stack-b", "stackless"), default="all",
        help="run only the tests that need the session's local stack (and those that start "
             "a node of their own), or only the rest; `make test` runs both parts at once "
             "(scripts/suite). The stack part splits in two that share one stack "
             "(tests/shared_stack.py): stack-b is the flows and ui tiers, stack-a the rest. "
             "Default: all.")


GUEST_TIERS = frozenset({"flows", "ui"})
"""The tiers of ``--part=stack-b``: they use only the stack's addresses and the Prefect
deployments (``deployed``), never its processes, so they run beside ``stack-a``."""
ALONE = "alone_on_the_stack"
"""The fixture of the tests that restart the stack's parts or load the whole node
(``tests/faults/conftest.py``): they run last, once ``stack-b`` is done."""
OWNER_FIXTURES = frozenset({"cluster", "services", "metrics_server"})
"""Fixtures built from the stack's own objects (its node, control plane, registry)."""
GUEST_MODULES = frozenset({"tests/e2e/test_drill.py", "tests/e2e/test_tail_and_slices.py",
                           "tests/e2e/test_rollback.py", "tests/e2e/test_bake.py",
                           "tests/e2e/test_install.py"})
"""Modules of other tiers that run in ``stack-b`` too, to even out the two parts' time
(from the suite's ``--durations``): they need only the stack's addresses, no GPU, and no
``cluster`` or ``services`` fixture (whose objects only the stack's owner has)."""


LAST_IN_PART = frozenset({"tests/e2e/test_install.py"})
"""Modules that run after the rest of their part: the pipeline's own pods (a 163 MB image
pulled, a worker polling Prefect, flow-run Jobs building images) load the node's CPU, and
the judge's latency-sensitive tests (tail, slices) run before them (CI red at 96c0884: a
slice-only fault read as a tail regression right after the install's pods)."""


def tier_of(item: pytest.Item) -> str:
    """``tests/TIER/...``'s TIER (``tests`` for a module at the top)."""
    parts = item.nodeid.split("/")
    return parts[1] if len(parts) > 2 else "tests"


def part_of(item: pytest.Item) -> str:
    """The ``--part`` a test runs in: ``stack-a``, ``stack-b`` or ``stackless``."""
    if not needs_stack(item):
        return "stackless"
    guest = tier_of(item) in GUEST_TIERS or item.nodeid.split("::")[0] in GUEST_MODULES
    return "stack-b" if guest else "stack-a"


def _selected(part: str, item: pytest.Item) -> bool:
    own = part_of(item)
    return own == part or (part == "stack" and own.startswith("stack-"))


def needs_stack(item: pytest.Item) -> bool:
    """Whether a test uses the session's stack or starts a node of its own (one per host).

    A name counts only where it resolves to this file's fixture: a test parametrized with
    an argument called ``deployed`` needs no stack.
    """
    if item.get_closest_marker("own_node") is not None:
        return True
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    for name in STACK_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        defs = info.name2fixturedefs.get(name) or ()
        if defs and getattr(defs[-1].func, "__module__", None) == __name__:
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Select the ``--part``, then order: ``own_node`` tests first, then the tests that restart
    the stack's parts or load the whole node (they use ``alone_on_the_stack``, so in
    ``stack-a`` they wait for ``stack-b``: ``tests/faults/conftest.py``); within each, the
    tests that use ``metrics_server`` and then the ``prometheus`` tests last
    (``_built_late``).

    Only one node runs per host (see ``localstack.kubenode.hostlock``), and the session's
    stack keeps its node until the session ends: a test that starts a node of its own must
    come before the first test that uses the ``stack`` fixture. The tests that run a real
    Prometheus come last, so its build, still running in the background (``scripts/prepare``),
    has the whole suite's time to finish; metrics-server's just before them, so it scrapes
    the node only for the tests that read it.
    """
    owners_only = [item.nodeid for item in items if part_of(item) == "stack-b"
                   and OWNER_FIXTURES.intersection(getattr(item, "fixturenames", ()))]
    if owners_only:  # a guest has only the stack's addresses, not its objects
        raise pytest.UsageError(f"tests in --part=stack-b (GUEST_TIERS, GUEST_MODULES) use "
                                f"{sorted(OWNER_FIXTURES)}, which need the stack's owner: "
                                f"{owners_only[:5]}; move their modules to stack-a")
    part = config.getoption("--part")
    if part != "all":
        keep = [item for item in items if _selected(part, item)]
        dropped = [item for item in items if not _selected(part, item)]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    items.sort(key=lambda item: (item.get_closest_marker("own_node") is None,
                                 ALONE in getattr(item, "fixturenames", ()),
                                 _built_late(item),
                                 item.nodeid.split("::")[0] in LAST_IN_PART))  # stable


def _built_late(item: pytest.Item) -> int:
    """0, or where a test that starts a late part of the stack goes: metrics-server (1),
    then Prometheus, whose build ``scripts/prepare`` leaves running (2)."""
    if item.get_closest_marker("prometheus") is not None:
        return 2
    return 1 if "metrics_server" in getattr(item, "fixturenames", ()) else 0


def _built(script: str) -> Path:
    """The binary ``scripts/SCRIPT`` builds, waiting for (or doing) its build: the script is
    a no-op once built and waits on its lock while ``scripts/prepare`` builds it."""
    path = Path(__file__).resolve().parents[1] / "scripts" / script
    done = subprocess.run(["bash", str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"scripts/{script} failed (exit {done.returncode}):\n"
                    f"{done.stderr[-3000:]}", pytrace=False)
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def alone_on_the_stack() -> None:
    """Wait for the shared stack's guest (``--part=stack-b``) to finish (a no-op without one).

    For the modules that restart the stack's parts or load the whole node
    (``tests/faults/test_restarts.py``, ``test_concurrency.py``,
    ``tests/e2e/test_autoscaling.py``): they run last in ``stack-a``, alone.
    """
    wait_for_guest()


@pytest.fixture(scope="session")
def prometheus_built() -> Path:
    """The Prometheus binary (``scripts/prometheus-assets``)."""
    return _built("prometheus-assets")


@pytest.fixture(scope="session")
def metrics_server(stack: Stack) -> Stack:
    """The session's stack with metrics-server running: ``kubectl top`` and
    HorizontalPodAutoscalers have data.

    The stack starts without it, so it scrapes the node only for the tests that read it: the
    first test that asks for it starts it (its binary: ``scripts/metrics-server-assets``, a
    no-op once ``scripts/kube-assets`` built it). Such tests run late
    (``pytest_collection_modifyitems``); only the stack's owner can start it.
    """
    _built("metrics-server-assets")
    stack.start_metrics_server()
    return stack


_TIER_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Add each test's setup, call and teardown time to its tier (``tests/TIER/...``)."""
    parts = report.nodeid.split("/")
    tier = parts[1] if len(parts) > 2 else "tests"  # as tier_of (a report is no item)
    _TIER_SECONDS[tier] = _TIER_SECONDS.get(tier, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Wall time per tier, slowest first. A session fixture (the stack) counts in the tier
    of the first test that asked for it."""
    if _TIER_SECONDS:
        terminalreporter.write_line("time per tier: " + ", ".join(
            f"{tier} {seconds:.0f} s" if seconds < 60 else f"{tier} {seconds / 60:.1f} min"
            for tier, seconds
            in sorted(_TIER_SECONDS.items(), key=lambda item: -item[1])))


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Stack]:
    """The one local stack of the test session: control plane, a real node (containerd,
    kubelet, kube-proxy), registry, MLflow, Prefect, and the self-contained serving base.

    The node has two GPUs: a one-GPU endpoint's canary and primary both hold one while it
    is promoted. Under ``scripts/suite`` the two stack parts share one (``shared_stack``).
    """
    root, part = shared_root(), request.config.getoption("--part")
    if root is not None and part in ("stack-a", "stack-b"):
        with shared_stack(root, part, gpus=2) as running:
            yield running
        return
    with Stack(tmp_path_factory.mktemp("stack"), gpus=2, metrics_server=False) as running:
        yield running


@pytest.fixture(scope="session")
def services(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """The stack's registry and MLflow, plus a TLS registry with basic auth of its own."""
    assert stack.registry is not None and stack.mlflow is not None and stack.state is not None
    assert stack.state.serving_base is not None
    root = tmp_path_factory.mktemp("services")
    secure = LocalRegistry(root / "secure-registry", tls=True,
                           users={REGISTRY_USER: REGISTRY_PASSWORD})
    secure.start()
    try:
        cache = root / "cache"
        secure_config = RegistryConfig.model_validate(
            {"username": REGISTRY_USER, "password": REGISTRY_PASSWORD, "ca_file": secure.ca_cert})
        with RegistryClient(secure_config) as client:
            secure_digest = build_serving_base(f"{secure.host}/ml/serving-base:1", client,
                                               PipelineSettings().build.cache_dir).digest
        yield Services(
            mlflow=stack.mlflow, registry=stack.registry, secure_registry=secure,
            base=stack.state.serving_base,
            secure_base=f"{secure.host}/ml/serving-base@{secure_digest}", cache=cache,
        )
    finally:
        secure.stop()


@pytest.fixture(scope="session")
def cluster(stack: Stack) -> Cluster:
    """The stack's control plane and node."""
    assert stack.controlplane is not None and stack.node is not None
    return Cluster(plane=stack.controlplane, node=stack.node)


@pytest.fixture(scope="session")
def crd(stack: Stack) -> None:
    """The ModelEndpoint CRD, installed once per session (server-side apply, as users would)."""
    from tests.support import install_crd

    install_crd(stack.kubeconfig)


@pytest.fixture(scope="session")
def deployed(stack: Stack, crd: None, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Deployed]:
    """``prefect deploy --all`` on the stack's Prefect, and a process worker running the flows.

    The worker's flow runs read endpoint files from a fresh directory (tests put theirs
    there) and reach the stack's cluster and MLflow. The watch-registry and drill schedules
    are paused, so only the tests that resume them see their runs.
    """
    from modelrelease_localstack.prefect_worker import LocalWorker, deploy_all

    env = stack.env()
    api = env["PREFECT_API_URL"]
    root = tmp_path_factory.mktemp("deployed")
    endpoints = root / "endpoints"
    endpoints.mkdir()
    deploy_all(api)
    made = Deployed(api_url=api, endpoints_dir=endpoints)
    for name in ("watch-registry", "rollback-drill"):
        made.pause(name)
    worker_env = {
        "MODELRELEASE_KUBE__KUBECONFIG": str(stack.kubeconfig),
        "MODELRELEASE_MLFLOW__TRACKING_URI": env["MLFLOW_TRACKING_URI"],
        "MODELRELEASE_BUILD__CACHE_DIR": str(root / "cache"),
        "MODELRELEASE_RELEASE__ENDPOINTS_DIR": str(endpoints),
        "MODELRELEASE_RELEASE__WAIT_FOR_LOCK_S": "60",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    }
    with LocalWorker(api, root / "worker", worker_env):
        yield made
