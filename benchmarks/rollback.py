"""Benchmark: `modelrelease rollback`, from the command to the primary serving the previous
digest, against releasing that version again (the named baseline, in the same run).

Run ``.venv/bin/python benchmarks/rollback.py``. It starts the local stack in a temporary
directory (in-process, stopped at the end), releases version 1 and then version 2 of a
small sklearn iris model (both promoted), then goes back to version 1 twice, with a client
calling the live Service every 50 ms throughout:

- ``manual``: ``run_rollback`` (what the CLI and the ``rollback`` flow call): no analysis,
  the verified image by digest. ``seconds`` runs from the call to the switch (the Services
  select version 1's pods); its pods start first, since nothing keeps them warm yet (the
  bake of issue 14 item 5 will).
- the baseline, ``release_previous``: a release of version 1 again with the endpoint's
  canary policy (canary, analysis, promotion), done after rolling forward to version 2.

One JSON line each: ``{"bench":"rollback","kind":"manual","seconds":…,"requests_lost":…,
"warm":false,"baseline":"release_previous","baseline_s":…,"baseline_requests_lost":…}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from _common import bench_stack, log, sigterm_as_exit

from modelrelease.adapters.pod_access import PodAccess
from modelrelease.adapters.probe import SteadyClient
from modelrelease.domain.pod_access import AccessMode
from modelrelease.release.driver import run_release
from modelrelease.release.rollback import run_rollback
from modelrelease.spec import ReleaseRequest, load_endpoint
from modelrelease_localstack.demo_model import register_iris_model

IRIS = {"dataframe_split": {
    "columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
    "data": [[5.1, 3.5, 1.4, 0.2]]}}


def main() -> None:
    with bench_stack("rollback-bench-") as bench:
        spec_file, settings, tracking = bench.spec_file, bench.settings(), bench.tracking_uri
        access = PodAccess(bench.cluster, AccessMode.DIRECT, "bench", "iris")

        def release(**kw: Any) -> str:
            done = run_release(ReleaseRequest(endpoint=str(spec_file), **kw), settings, say=log)
            assert done.outcome == "promoted", done.reason
            return done.image

        def timed(act: Callable[[], object]) -> tuple[float, int]:
            url = access.url("bench", "iris", "invocations")
            with SteadyClient(access, url, IRIS, interval=0.05, new_connections=True) as steady:
                began = time.monotonic()
                act()
                took = time.monotonic() - began
                time.sleep(3)  # the old pods drain meanwhile; a lost request would show
            return took, len(steady.failed)

        register_iris_model(tracking, "bench-iris", alias="champion")
        one = release()
        register_iris_model(tracking, "bench-iris", alias="champion", c=0.3)
        release()
        endpoint = load_endpoint(spec_file)
        result = None

        def roll_back() -> None:
            nonlocal result
            result = run_rollback(endpoint, None, "benchmark", settings, say=log)

        manual_s, manual_lost = timed(roll_back)
        assert result is not None and result.image == one, result
        release(version=2)  # forward again, for the baseline
        baseline_s, baseline_lost = timed(lambda: release(version=1))
        print(json.dumps({"bench": "rollback", "kind": "manual",
                          "seconds": round(result.seconds, 2),
                          "command_s": round(manual_s, 2), "requests_lost": manual_lost,
                          "warm": result.warm, "baseline": "release_previous",
                          "baseline_s": round(baseline_s, 2),
                          "baseline_requests_lost": baseline_lost}), flush=True)


if __name__ == "__main__":
    with sigterm_as_exit():
        main()
