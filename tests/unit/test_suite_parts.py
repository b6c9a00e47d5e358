"""``pytest --part=stack-a|stack-b|stackless`` (tests/conftest.py), which ``scripts/suite``
runs at once: each test lands in exactly one part, by whether it uses the session's stack
and, if it does, by its tier (flows and ui share the stack as its guest: stack-b)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# one module of each kind: the stack's own (own_node), one that uses the session's stack,
# one that starts its own services, one that runs Prometheus, plain unit tests, and fakes
MODULES = ["tests/integration/test_stack.py", "tests/integration/test_webhook.py",
           "tests/integration/test_loadgen.py", "tests/integration/test_prometheus_source.py",
           "tests/unit/test_stats.py", "tests/fast/test_release_loop.py",
           "tests/flows/test_cancel.py", "tests/faults/test_concurrency.py",
           "tests/e2e/test_live_traffic.py", "tests/faults/test_restarts.py",
           "tests/faults/test_kill.py", "tests/integration/test_metrics_server.py"]


def _collected(part: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "", f"--part={part}", "--collect-only", "-q",
         "-p", "no:cacheprovider", *MODULES],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=120)
    return [line for line in done.stdout.splitlines() if "::" in line]


@pytest.fixture(scope="module")
def parts() -> dict[str, list[str]]:
    return {part: _collected(part) for part in ("all", "stack", "stack-a", "stack-b",
                                                "stackless")}


@pytest.mark.parametrize(("module", "part"), [
    ("tests/integration/test_stack.py", "stack-a"),          # own_node
    ("tests/integration/test_webhook.py", "stack-a"),        # the session's stack
    ("tests/flows/test_cancel.py", "stack-b"),               # its addresses only: the guest
    ("tests/faults/test_concurrency.py", "stack-a"),         # loads the node: the owner
    ("tests/faults/test_restarts.py", "stack-a"),            # restarts parts: the owner
    ("tests/faults/test_kill.py", "stack-a"),                # its own endpoint
    ("tests/integration/test_metrics_server.py", "stack-a"),  # starts metrics-server
    ("tests/integration/test_loadgen.py", "stackless"),      # its own services
    ("tests/integration/test_prometheus_source.py", "stackless"),
    ("tests/unit/test_stats.py", "stackless"),
    # parametrized with an argument called `deployed`, which is no stack fixture there
    ("tests/fast/test_release_loop.py", "stackless"),
])
def test_each_module_runs_in_its_part(parts: dict[str, list[str]], module: str,
                                      part: str) -> None:
    assert any(test.startswith(module) for test in parts[part])
    for other in {"stack-a", "stack-b", "stackless"} - {part}:
        assert not any(test.startswith(module) for test in parts[other])


def test_the_parts_split_all_tests_exactly(parts: dict[str, list[str]]) -> None:
    assert sorted(parts["stack"] + parts["stackless"]) == sorted(parts["all"])
    assert sorted(parts["stack-a"] + parts["stack-b"]) == sorted(parts["stack"])


def test_own_node_tests_first_alone_ones_last_and_late_builds_last_before_them(
        parts: dict[str, list[str]]) -> None:
    """Own-node tests first; the tests alone on the shared stack (restarts, releases at
    once) last; before them, the tests that start a late part of the stack: metrics-server,
    then Prometheus (whose build ``scripts/prepare`` leaves running)."""
    order = parts["all"]

    def where(*modules: str) -> list[int]:
        return [i for i, test in enumerate(order) if test.startswith(modules)]

    own = where(MODULES[0])
    restarts = where("tests/faults/test_restarts.py", "tests/faults/test_concurrency.py")
    metrics = where("tests/integration/test_metrics_server.py")
    prometheus = where(MODULES[3], "tests/e2e/test_live_traffic.py")
    assert own == list(range(len(own)))
    assert restarts == list(range(len(order) - len(restarts), len(order)))
    before = len(order) - len(restarts)
    assert prometheus == list(range(before - len(prometheus), before))
    before -= len(prometheus)
    assert metrics == list(range(before - len(metrics), before))
