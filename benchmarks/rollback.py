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

Then the warm path (issue 14 item 5): version 2 is released again with a bake of 10
minutes, and while it bakes (version 1's pods warm at no traffic) ``modelrelease abort``
is asked for, as the refusal of ``rollback`` during a bake says to. ``seconds`` runs from
the abort's request to the switch (``Service E-primary`` selects version 1's pods), and
the baseline is the manual rollback above, whose target's pods had to start.

One JSON line each: ``{"bench":"rollback","kind":"manual","seconds":…,"requests_lost":…,
"warm":false,"baseline":"release_previous","baseline_s":…,"baseline_requests_lost":…}``
and ``{"bench":"rollback","kind":"bake","trigger":"abort","seconds":…,"requests_lost":…,
"warm":true,"baseline":"manual","baseline_s":…}``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from _common import bench_stack, log, sigterm_as_exit

from modelrelease.adapters.pod_access import PodAccess
from modelrelease.adapters.probe import SteadyClient
from modelrelease.domain.manifests import Track
from modelrelease.domain.pod_access import AccessMode
from modelrelease.release.driver import run_release
from modelrelease.release.kube_endpoint import KubeEndpoint
from modelrelease.release.rollback import run_rollback
from modelrelease.spec import CanaryPolicy, ReleaseRequest, load_endpoint
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

        # version 1 is primary again: version 2 bakes, and is aborted while it does
        kube = KubeEndpoint(endpoint, bench.cluster)
        baked = CanaryPolicy.model_validate(
            endpoint.spec.canary.model_dump(mode="json", by_alias=True, exclude_none=True)
            | {"bake": {"duration": "10m"}})
        ended: list[str] = []

        def bake_version_2() -> None:
            done = run_release(ReleaseRequest(endpoint=str(spec_file), version=2,
                                              canary=baked), settings, say=log)
            ended.append(f"{done.outcome}: {done.reason}")

        baking = threading.Thread(target=bake_version_2, daemon=True)
        baking.start()
        status = kube.read_status()
        while status is None or status.phase != "Baking":
            assert baking.is_alive(), ended
            time.sleep(0.2)
            status = kube.read_status()
        assert status is not None and status.release_id and status.canary is not None
        target = status.canary.digest or ""
        warm = kube.serves(Track.CANARY, target) and kube.canary_replicas() > 0

        def abort() -> None:
            kube.request_abort(status.release_id or "", "benchmark")
            while not kube.serves(Track.PRIMARY, target):
                time.sleep(0.05)

        abort_s, abort_lost = timed(abort)
        baking.join(timeout=300)
        assert ended and ended[0].startswith("rolled_back"), ended
        print(json.dumps({"bench": "rollback", "kind": "bake", "trigger": "abort",
                          "seconds": round(abort_s, 2), "requests_lost": abort_lost,
                          "warm": warm, "baseline": "manual",
                          "baseline_s": round(result.seconds, 2)}), flush=True)


if __name__ == "__main__":
    with sigterm_as_exit():
        main()
