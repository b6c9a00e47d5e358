"""Benchmark: how long a release takes beyond its hold time, and how fast a bad one is undone.

Run ``.venv/bin/python benchmarks/release.py``. It starts the local stack in a temporary
directory (in-process, stopped at the end), installs the ModelEndpoint CRD, and releases
a small sklearn iris model: a first release, a good new version (promoted) and a 3x-slower
version (rolled back). One JSON line per measured release:

``{"bench":"release","outcome":"promoted"|"rolled_back","total_s":…,"hold_s":…,"overhead_s":…,"restore_s":…,"switch_s":…,"unrouted_s":…}``

``total_s`` runs from the trigger to the release's end; ``hold_s`` is the time spent
generating load and judging (the configured hold; a sequential judge may stop early);
``overhead_s = total_s - hold_s`` is the pipeline's own cost (image build, pod start,
smoke test, promotion). ``restore_s`` (rollbacks) runs from the failing verdict until no
canary pod is left, i.e. the primary serves alone; ``unrouted_s`` (rollbacks) from the
failing verdict until no canary pod is a ready endpoint of the live Service (no user
reaches it; its pods then drain through their 2 s preStop hook). ``switch_s``
(promotions) runs from the passing verdict to the release's end: promotion makes the
verified canary's pods the primary, so no pod starts. For comparison, Flagger and Argo
Rollouts judge once per analysis interval (60 s by default), so undoing a bad canary
takes at least that long there. Targets: overhead under 10 s, canary out of traffic
within 2 s of the verdict.
"""

from __future__ import annotations

import json
import threading
import time

from _common import bench_stack, log, sigterm_as_exit

from modelrelease.adapters.kube import KubeCluster
from modelrelease.domain.manifests import LABEL_SLOT, slots_of
from modelrelease.release.driver import ReleaseResult, run_release
from modelrelease.spec import ReleaseRequest
from modelrelease_localstack.demo_model import register_faulty_model, register_iris_model


def line(result: ReleaseResult, restore_s: float | None = None,
         unrouted_s: float | None = None) -> str:
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    switch = None
    if result.outcome == "promoted":
        verdict_at = next(t for t, text in result.timeline if "→Promoting" in text)
        switch = result.seconds - verdict_at
    return json.dumps({"bench": "release", "outcome": result.outcome,
                       "total_s": round(result.seconds, 2), "hold_s": round(result.hold_seconds, 2),
                       "overhead_s": round(result.seconds - result.hold_seconds, 2),
                       "restore_s": rounded(restore_s), "switch_s": rounded(switch),
                       "unrouted_s": rounded(unrouted_s), "version": result.version})


class Routed:
    """Polls Service ``E``'s EndpointSlices: which slots have a ready endpoint, and when."""

    def __init__(self, cluster: KubeCluster, namespace: str, service: str) -> None:
        self.cluster, self.namespace, self.service = cluster, namespace, service
        self.seen: list[tuple[float, set[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            slices = self.cluster.list_objects("discovery.k8s.io/v1", "EndpointSlice",
                                               self.namespace,
                                               f"kubernetes.io/service-name={self.service}")
            now, ready = time.monotonic(), set()
            for item in slices:
                for point in item.get("endpoints") or []:
                    pod = str((point.get("targetRef") or {}).get("name") or "")
                    if (point.get("conditions") or {}).get("ready"):
                        ready.add(pod.removeprefix(f"{self.service}-").split("-", 1)[0])
            self.seen.append((now, ready))
            self._stop.wait(0.05)

    def unrouted_after(self, slot: str, since: float) -> float | None:
        """Seconds from ``since`` to the first poll that found no ready pod of ``slot``.

        An upper bound (one poll late at most). None: ``slot`` was never seen routed.
        """
        self._stop.set()
        self._thread.join()
        if not any(slot in ready for _, ready in self.seen):
            return None
        return next((max(0.0, at - since) for at, ready in self.seen
                     if at >= since and slot not in ready), None)


def main() -> None:
    with bench_stack("release-bench-") as bench:
        cluster, settings, tracking = bench.cluster, bench.settings(), bench.tracking_uri

        def release(**kw: object) -> ReleaseResult:
            return run_release(ReleaseRequest(endpoint=str(bench.spec_file), **kw), settings,
                               say=log)

        register_iris_model(tracking, "bench-iris", alias="champion")
        first = release()
        log(f"first release: {first.outcome} in {first.seconds:.1f}s")
        print(line(first), flush=True)
        register_iris_model(tracking, "bench-iris", alias="champion", c=0.3)
        good = release()
        print(line(good), flush=True)
        slow = register_faulty_model(tracking, "bench-iris", "slow", delay_s=0.06)
        canary = slots_of(cluster.get("v1", "Service", "iris-primary", "bench")).canary
        routed = Routed(cluster, "bench", "iris")
        bad = release(version=int(slow))
        verdict_at = next(t for t, text in bad.timeline if "→RollingBack" in text)
        decided = time.monotonic() - (bad.seconds - verdict_at)
        while cluster.pods("bench", f"{LABEL_SLOT}={canary}"):  # until the primary serves alone
            time.sleep(0.1)
        restore = time.monotonic() - decided
        unrouted = routed.unrouted_after(canary.value, decided)
        print(line(bad, restore, unrouted), flush=True)


if __name__ == "__main__":
    with sigterm_as_exit():
        main()
