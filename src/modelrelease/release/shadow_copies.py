"""``ShadowCopies``: a shadow step's copies, told to the primary's pods and read back.

Opening tells each running primary pod (``PUT /modelrelease/shadow``, through the path
``PodAccess`` picks, with the token its Deployment gave it) to copy a share of the live
requests it answers to ``Service E-canary`` for the hold and a margin; closing reads each
pod's records since then (``GET ?after=``), turns the copies off (``DELETE``) and judges
them (``domain.shadow.judge_shadow``). A pod that starts during the step is not told; a
pod that cannot be told or read is named in the evidence. Nothing here restarts a pod.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx

from modelrelease.adapters.pod_access import PodAccess
from modelrelease.adapters.pod_metrics import running
from modelrelease.domain.live import LiveOutcome
from modelrelease.domain.manifests import (
    SERVING_PORT,
    Track,
    label_selector,
    shadow_token_of,
)
from modelrelease.domain.plan import agreement_policy, analysis_policy
from modelrelease.domain.shadow import (
    CONTROL_PATH,
    TOKEN_ENV,
    TOKEN_HEADER,
    ShadowEvidence,
    ShadowRecord,
    judge_shadow,
)
from modelrelease.errors import PipelineError
from modelrelease.release.kube_endpoint import KubeEndpoint

logger = logging.getLogger(__name__)
MARGIN = timedelta(minutes=2)
"""How long past the hold a pod keeps copying if nobody turns it off (the pipeline died)."""


class ShadowCopies:
    """The copies of one shadow step (a ``ports.ShadowWindow``), started on creation.

    Args:
        kube: The endpoint in the cluster.
        access: How to reach its pods.
        percent: The share of live requests each primary pod copies.
        hold: How long the step holds.
        rate: The generated load's rate (the judge's plan for the step, as for its load).
    """

    def __init__(self, kube: KubeEndpoint, access: PodAccess, percent: int, hold: timedelta,
                 rate: float) -> None:
        self.kube, self.access, self.percent, self.hold, self.rate = (
            kube, access, percent, hold, rate)
        self.where = f"{kube.namespace}/{kube.endpoint.name}"
        self.began = time.monotonic()
        self.failures: list[str] = []
        self.marks: dict[str, tuple[int, int]] = {}  # pod: (last record seq, dropped so far)
        slots = kube.slots()
        self.token = shadow_token_of(kube.deployment(Track.PRIMARY, slots))
        if self.token is None:
            self.failures.append(f"the primary's pods have no shadow control ({TOKEN_ENV}: "
                                 "deployed before shadow steps); release once without shadow "
                                 "steps, then shadow the next version")
            return
        pods = running(kube.cluster.pods(kube.namespace,
                                         label_selector(kube.endpoint, slots.primary)))
        setting = {"percent": percent, "seconds": (hold + MARGIN).total_seconds()}
        for name in (str(pod["metadata"]["name"]) for pod in pods):
            answer = self._call("PUT", name, json=setting)
            if answer is not None:
                self.marks[name] = (int(answer["next"]), int(answer["counts"]["dropped"]))
        if not pods:
            self.failures.append("no running primary pod to copy from")

    def _call(self, method: str, pod: str, **kwargs: Any) -> dict[str, Any] | None:
        """One call to a pod's shadow control; None (and a failure line) when it fails."""
        assert self.token is not None
        try:
            url = self.access.pod_url(self.kube.namespace, pod, SERVING_PORT, CONTROL_PATH)
            with self.access.client(timeout=30) as http:
                answer = http.request(method, url, headers={TOKEN_HEADER: self.token},
                                      **kwargs)
        except (httpx.HTTPError, PipelineError) as exc:
            self.failures.append(f"pod {pod}: {method} {CONTROL_PATH}: "
                                 f"{type(exc).__name__}: {exc}")
            return None
        logger.debug("%s %s -> %s", method, url, answer.status_code)
        if answer.status_code != 200:
            self.failures.append(f"pod {pod}: {method} {CONTROL_PATH} answered "
                                 f"{answer.status_code}: {answer.text[:200]}")
            return None
        found: dict[str, Any] = answer.json()
        return found

    def close(self, wait: bool = False, stop: Callable[[], bool] = lambda: False
              ) -> ShadowEvidence:
        """Read every told pod's records since it was told, stop its copies, judge them.

        ``wait``: first until the hold is over (checking ``stop()`` each second).
        """
        end = self.began + self.hold.total_seconds()
        while wait and time.monotonic() < end and not stop():
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        records: list[ShadowRecord] = []
        dropped = 0
        for pod, (after, dropped_before) in self.marks.items():
            found = self._call("GET", pod, params={"after": after})
            self._call("DELETE", pod)
            if found is None:
                continue
            records += [ShadowRecord.from_json(item) for item in found["records"]]
            dropped += int(found["counts"]["dropped"]) - dropped_before
        endpoint = self.kube.endpoint
        if not self.marks:
            return ShadowEvidence(LiveOutcome.UNAVAILABLE, "shadow: no primary pod copied "
                                  f"live requests: {'; '.join(self.failures)}",
                                  percent=self.percent)
        agreement = agreement_policy(endpoint)
        compare = endpoint.spec.canary.checks.agreement.enabled
        found_evidence = judge_shadow(
            records, dropped, analysis_policy(endpoint, self.hold, self.rate),
            min_agreement=agreement.min_agreement if compare else 0.0,
            min_rows=agreement.min_samples, percent=self.percent)
        if self.failures:
            found_evidence = replace(found_evidence, reason=f"{found_evidence.reason} (not "
                                     f"read: {'; '.join(self.failures)})")
        return found_evidence
