"""``pytest --part=stack|stackless`` (tests/conftest.py), which ``scripts/suite`` runs at once:
each test lands in exactly one part, by whether it uses the session's stack."""

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
           "tests/unit/test_stats.py", "tests/fast/test_release_loop.py"]


def _collected(part: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "", f"--part={part}", "--collect-only", "-q",
         "-p", "no:cacheprovider", *MODULES],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=120)
    return [line for line in done.stdout.splitlines() if "::" in line]


@pytest.fixture(scope="module")
def parts() -> dict[str, list[str]]:
    return {part: _collected(part) for part in ("all", "stack", "stackless")}


@pytest.mark.parametrize(("module", "part"), [
    ("tests/integration/test_stack.py", "stack"),            # own_node
    ("tests/integration/test_webhook.py", "stack"),          # the session's stack
    ("tests/integration/test_loadgen.py", "stackless"),      # its own services
    ("tests/integration/test_prometheus_source.py", "stackless"),
    ("tests/unit/test_stats.py", "stackless"),
    # parametrized with an argument called `deployed`, which is no stack fixture there
    ("tests/fast/test_release_loop.py", "stackless"),
])
def test_each_module_runs_in_its_part(parts: dict[str, list[str]], module: str,
                                      part: str) -> None:
    other = "stackless" if part == "stack" else "stack"
    assert any(test.startswith(module) for test in parts[part])
    assert not any(test.startswith(module) for test in parts[other])


def test_the_parts_split_all_tests_exactly(parts: dict[str, list[str]]) -> None:
    assert sorted(parts["stack"] + parts["stackless"]) == sorted(parts["all"])


def test_own_node_tests_come_first_and_prometheus_tests_last(
        parts: dict[str, list[str]]) -> None:
    order = parts["all"]
    own = [i for i, test in enumerate(order) if test.startswith(MODULES[0])]
    prometheus = [i for i, test in enumerate(order) if test.startswith(MODULES[3])]
    assert own == list(range(len(own)))
    assert prometheus == list(range(len(order) - len(prometheus), len(order)))
