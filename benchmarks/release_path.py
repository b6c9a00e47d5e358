"""Benchmark: the path one release takes through the code, followed at run time.

Run ``.venv/bin/python benchmarks/release_path.py [--baseline REF]``. It starts the local
stack in a temporary directory, releases a first version of a small sklearn iris model,
then runs the Prefect flow ``release_model`` (``flows/release.py``) for a second version
with a profiler on (``sys.setprofile`` and ``threading.setprofile``: every thread the
release starts). Only the project's own code counts (``src/modelrelease/``, ``flows/``,
``tasks/``); Prefect, the Kubernetes client and the standard library are looked through,
so a call from project code through a library into project code counts as one call.

A call *enters* a module when its caller (the nearest project frame below it) is in
another module. Layers, lowest first (docs/ARCHITECTURE.md): foundation (errors,
settings, costs, render) 0, spec 1, domain 2, adapters and serving 3, build 4,
release 5, flows and tasks 6, cli 7. A call *goes back up* when it enters a module of a
higher layer than its caller's (a callback from an adapter into the driver, say). One
JSON line per traced release:

``{"bench":"release_path","ref":…,"outcome":…,"modules":…,"entries":…,"up_layer_calls":…,``
``"most_entered":{module: entries, …},"up_edges":{"caller -> callee": calls, …}}``

With ``--baseline REF`` the same trace runs first on a git worktree of ``REF`` (in a
subprocess with that tree first on ``sys.path``, on a stack of its own), so the two lines
compare one method on two versions of the code.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TOP_LAYERS = {"errors": 0, "settings": 0, "costs": 0, "render": 0, "spec": 1, "domain": 2,
              "adapters": 3, "serving": 3, "build": 4, "release": 5, "cli": 7}


def module_of(path: str, root: Path) -> str | None:
    """A project file's module path (``release/driver.py``, ``flows/release.py``), or None."""
    try:
        relative = Path(path).resolve().relative_to(root)
    except ValueError:
        return None
    parts = relative.parts
    if parts[:2] == ("src", "modelrelease") and len(parts) > 2:
        return "/".join(parts[2:])
    if parts and parts[0] in ("flows", "tasks"):
        return "/".join(parts)
    return None


def layer_of(module: str) -> int:
    """A module's layer (see the module docstring)."""
    top = module.split("/")[0].removesuffix(".py")
    if top in ("flows", "tasks"):
        return 6
    return TOP_LAYERS.get(top, 0)


class PathTrace:
    """Counts module entries and up-layer calls of project code while installed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.entries: Counter[str] = Counter()
        self.up: Counter[str] = Counter()
        self._modules: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def _module(self, frame: FrameType) -> str | None:
        path = frame.f_code.co_filename
        if path not in self._modules:
            self._modules[path] = module_of(path, self.root)
        return self._modules[path]

    def _profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        callee = self._module(frame)
        if callee is None:
            return
        caller_frame = frame.f_back
        caller = None
        while caller_frame is not None:
            caller = self._module(caller_frame)
            if caller is not None:
                break
            caller_frame = caller_frame.f_back
        if caller == callee:
            return
        with self._lock:
            self.entries[callee] += 1
            if caller is not None and layer_of(callee) > layer_of(caller):
                self.up[f"{caller} -> {callee}"] += 1

    def __enter__(self) -> PathTrace:
        threading.setprofile(self._profile)
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]

    def summary(self) -> dict[str, Any]:
        return {"modules": len(self.entries), "entries": sum(self.entries.values()),
                "up_layer_calls": sum(self.up.values()),
                "most_entered": dict(self.entries.most_common(8)),
                "up_edges": dict(self.up.most_common())}


def trace(ref: str) -> None:
    """Release twice on a stack of our own; print the second release's path as JSON."""
    from _common import bench_stack, log
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from modelrelease.release.driver import run_release
    from modelrelease.settings import PipelineSettings
    from modelrelease.spec import ReleaseRequest

    try:  # a tree from before the local stack became its own distribution (--baseline)
        from modelrelease.localstack.demo_model import register_iris_model  # type: ignore
    except ImportError:
        from modelrelease_localstack.demo_model import register_iris_model

    with bench_stack("release-path-") as bench:
        spec_file, tracking, env = bench.spec_file, bench.tracking_uri, bench.env
        os.environ.update(bench.settings_env)
        register_iris_model(tracking, "bench-iris", alias="champion")
        first = run_release(ReleaseRequest(endpoint=str(spec_file)), PipelineSettings(),
                            say=log)
        log(f"first release (not traced): {first.outcome}")
        register_iris_model(tracking, "bench-iris", alias="champion", c=0.3)
        with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
            from flows.release import release_model

            with PathTrace(REPO) as path:
                outcome = release_model(ReleaseRequest(endpoint=str(spec_file)))
    print(json.dumps({"bench": "release_path", "ref": ref, "outcome": outcome["outcome"],
                      **path.summary()}), flush=True)


def baseline(ref: str) -> None:
    """Run this script's trace on a worktree of ``ref`` (its code first on the path)."""
    with tempfile.TemporaryDirectory(prefix="release-path-base-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q",
                        str(tree), ref], check=True)
        try:
            for name in ("release_path.py", "_common.py"):  # this trace, on that code
                (tree / "benchmarks" / name).write_text((Path(__file__).parent / name)
                                                        .read_text())
            paths = [tree / "src", tree, tree / "localstack" / "src"]
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, paths))}
            subprocess.run([sys.executable, str(tree / "benchmarks" / "release_path.py"),
                            "--trace", ref], env=env, check=True, cwd=tree)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(tree)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", metavar="REF",
                        help="also trace the code at this git ref (first), for comparison")
    parser.add_argument("--trace", metavar="REF", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trace:
        trace(args.trace)
        return
    if args.baseline:
        baseline(args.baseline)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    trace(head)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import sigterm_as_exit

    with sigterm_as_exit():
        main()
