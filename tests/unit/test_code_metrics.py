"""benchmarks/release_path.py and code_size.py measure what they say they measure."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "release_path.py"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return _load("release_path_bench", BENCH)


@pytest.mark.parametrize(("relative", "module", "layer"), [
    ("src/modelrelease/release/driver.py", "release/driver.py", 5),
    ("src/modelrelease/adapters/kube.py", "adapters/kube.py", 3),
    ("src/modelrelease/spec/endpoint.py", "spec/endpoint.py", 1),
    ("src/modelrelease/domain/rollout.py", "domain/rollout.py", 2),
    ("src/modelrelease/serving/app.py", "serving/app.py", 3),
    ("src/modelrelease/build/builder.py", "build/builder.py", 4),
    ("src/modelrelease/settings.py", "settings.py", 0),
    ("src/modelrelease/cli.py", "cli.py", 7),
    ("flows/release.py", "flows/release.py", 6),
    ("tasks/steps.py", "tasks/steps.py", 6),
    ("localstack/src/modelrelease_localstack/stack.py", None, None),
    ("tests/fakes.py", None, None),
])
def test_modules_and_layers(bench: ModuleType, tmp_path: Path, relative: str,
                            module: str | None, layer: int | None) -> None:
    assert bench.module_of(str(tmp_path / relative), tmp_path) == module
    assert bench.module_of("/elsewhere/x.py", tmp_path) is None
    if module is not None:
        assert bench.layer_of(module) == layer


def test_trace_counts_entries_and_callbacks_up_a_layer(bench: ModuleType,
                                                       tmp_path: Path) -> None:
    """A release module calls an adapter twice; the adapter calls back into the release
    module once through a library (functools), which counts as a direct call."""
    release = tmp_path / "src" / "modelrelease" / "release"
    adapters = tmp_path / "src" / "modelrelease" / "adapters"
    release.mkdir(parents=True)
    adapters.mkdir(parents=True)
    (adapters / "port.py").write_text(
        "import functools\n"
        "def fetch(callback=None):\n"
        "    inner()\n"
        "    if callback:\n"
        "        functools.partial(callback)()\n"
        "def inner():\n"
        "    return 1\n")
    port = _load("trace_fixture_port", adapters / "port.py")
    (release / "driver.py").write_text(
        "def run(port):\n"
        "    port.fetch()\n"
        "    port.fetch(callback=said)\n"
        "def said():\n"
        "    return 2\n")
    driver = _load("trace_fixture_driver", release / "driver.py")
    with bench.PathTrace(tmp_path) as path:
        driver.run(port)
    summary = path.summary()
    assert summary["most_entered"] == {"adapters/port.py": 2, "release/driver.py": 2}
    assert summary["modules"] == 2 and summary["entries"] == 4
    assert summary["up_edges"] == {"adapters/port.py -> release/driver.py": 1}
    assert summary["up_layer_calls"] == 1
    assert sys.getprofile() is None


def test_code_size_counts_modules_and_functions_over_80_lines() -> None:
    sizes = _load("code_size_bench", BENCH.with_name("code_size.py")).sizes
    body = "\n".join(f"    x{i} = {i}" for i in range(79))
    files = {f"m{i}.py": "pass\n" * i for i in range(1, 12)}
    files["long.py"] = f"def long():\n{body}\n    return 1\n\nasync def edge():\n{body}\n"
    got = sizes(files)
    assert got["modules"] == 12 and got["lines"] == sum(range(1, 12)) + 162
    assert got["long_functions"] == {"long.py:long": 81}  # edge() is 80 lines: not over
    assert list(got["largest"]) == ["long.py", *(f"m{i}.py" for i in range(11, 2, -1))]
