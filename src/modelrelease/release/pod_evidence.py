"""``PodEvidence``: what the judge is fed, read from the endpoint's pods (an ``Evidence``).

The smoke test, the generated load on both tracks (judged sequentially by
``domain.analysis``), live traffic from the pods' own metrics or a Prometheus server
(``domain.live``) and output agreement (``domain.agreement``), each through the path
``PodAccess`` picks: the Service's ClusterIP where it is reachable, else the API
server's proxy. A shadow step's copies are ``release.shadow_copies``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx

from modelrelease.adapters.loadgen import Target, Variant, generate_load
from modelrelease.adapters.mlflow_registry import MlflowRegistry
from modelrelease.adapters.model_files import ModelFiles
from modelrelease.adapters.pod_access import PodAccess, get_once_routed
from modelrelease.adapters.pod_metrics import running, scrape
from modelrelease.adapters.probe import ask
from modelrelease.adapters.prometheus import Prometheus
from modelrelease.domain import agreement, analysis, live, sample_set
from modelrelease.domain.analysis import AnalysisPolicy
from modelrelease.domain.bake import judge_bake
from modelrelease.domain.manifests import Track, label_selector, service_name
from modelrelease.domain.model import ModelVersion
from modelrelease.domain.plan import agreement_policy, analysis_policy
from modelrelease.domain.smoke import SmokeResult, check_response
from modelrelease.errors import PipelineError
from modelrelease.release.kube_endpoint import KubeEndpoint
from modelrelease.release.shadow_copies import ShadowCopies
from modelrelease.settings import PipelineSettings


class PodEvidence:
    """Smoke, load, live traffic and agreement of one endpoint's pods."""

    def __init__(self, kube: KubeEndpoint, settings: PipelineSettings,
                 models: MlflowRegistry) -> None:
        self.kube = kube
        self.endpoint = kube.endpoint
        self.namespace = kube.namespace
        self.settings = settings
        self.models = models
        self.access = PodAccess(kube.cluster, settings.kube.pod_access, self.namespace,
                                service_name(self.endpoint))
        """How smoke, load, agreement and scraping reach the pods (ClusterIP or proxy)."""
        self.prometheus = Prometheus(settings.prometheus) if settings.prometheus.url else None
        """Where live traffic is read when configured; otherwise from the pods themselves."""

    @property
    def via(self) -> str | None:
        """How the checks reached the pods, once they have (None before)."""
        return self.access.via if self.access.path else None

    def smoke(self, files: ModelFiles) -> SmokeResult:
        """``/ping``, then ``/invocations`` with the model's own input example."""
        canary = service_name(self.endpoint, Track.CANARY)

        def run() -> SmokeResult:
            with self.access.client(timeout=30) as http:
                # the canary's pods are Ready; the route to them may lag a moment
                ping = get_once_routed(http, self.access.url(self.namespace, canary, "ping"))
                if ping.status_code != 200:
                    return SmokeResult(False, f"GET /ping answered {ping.status_code}")
                if files.serving_example is None:
                    if self.endpoint.spec.smoke.require_input_example:
                        return SmokeResult(False, "the model version has no input example; "
                                                  "log one (input_example=...) or set "
                                                  "spec.smoke.requireInputExample: false")
                    return SmokeResult(True, "/ping answered 200 (no input example to send)")
                answer = http.post(self.access.url(self.namespace, canary, "invocations"),
                                   json=files.serving_example)
                if answer.status_code != 200:
                    return SmokeResult(False, f"POST /invocations answered {answer.status_code}"
                                              f": {answer.text[:300]}")
                try:
                    body = answer.json()
                except ValueError:
                    return SmokeResult(False, f"POST /invocations answered non-JSON: "
                                              f"{answer.text[:200]}")
                return check_response(files.outputs, files.rows, body)

        try:
            result: SmokeResult = run()
        except httpx.HTTPError as exc:
            return SmokeResult(False, f"smoke request failed: {type(exc).__name__}: {exc}")
        return result

    def analyse(self, hold: timedelta, files: ModelFiles, first_release: bool,
                variants: tuple[Variant, ...], stop: Callable[[], bool] = lambda: False,
                ) -> tuple[analysis.Verdict, live.LiveEvidence, str | None]:
        """Load both arms at once for ``hold`` (in looks) and judge them sequentially.

        ``variants``: the slice mix ``preflight`` built. ``stop()`` is asked after each
        look: True ends the hold there, with the verdict so far (an abort).
        A first release has no primary: its samples stand for both arms, so only the
        absolute checks (error rate, p95/p99 SLOs) can fail it. The pods' own metrics,
        read before the first look and after the last, say what real users sent meanwhile
        (``domain.live``). Returns the generated load's verdict, live traffic's evidence
        (``domain.verdict.step_verdict`` combines them) and why the load lagged, if it did.
        """
        rate = self.settings.release.load_rate
        policy = analysis_policy(self.endpoint, hold, rate)
        body = json.dumps(files.serving_example or {}).encode()
        method = "POST" if files.serving_example else "GET"
        path = "invocations" if files.serving_example else "ping"
        headers = {"Content-Type": "application/json", live.GENERATED_HEADER: "judge"}
        arms = [Target("canary", self.access.url(self.namespace, service_name(
            self.endpoint, Track.CANARY), path), method, body if method == "POST" else None,
            headers, variants)]
        if not first_release:
            arms.append(Target("primary", self.access.url(self.namespace, service_name(
                self.endpoint, Track.PRIMARY), path), method,
                body if method == "POST" else None, headers, variants))
        per_look = max(1, policy.max_requests // policy.looks)
        judge = analysis.SequentialJudge()
        verdict: analysis.Verdict | None = None
        lag: str | None = None

        def one_look() -> Any:
            return asyncio.run(generate_load(arms, rate, max_requests=per_look,
                                             transport=self.access.transport()))

        began = time.time()
        before = {} if self.prometheus else self.scrape_tracks(first_release)
        sent: dict[str, Counter[str]] = {"canary": Counter(), "primary": Counter()}
        for _ in range(policy.looks):
            report = one_look()
            lag = lag or report.lag_reason
            for name, arm in report.arms.items():
                sent[name].update(str(r.status) for r in arm.requests if r.status is not None)
            canary = report.arms["canary"].samples()
            primary = canary if first_release else report.arms["primary"].samples()
            judge, verdict = analysis.look(judge, analysis.Samples(canary, primary), policy)
            if verdict.decided or stop():
                break
        assert verdict is not None
        slices = self.endpoint.spec.canary.checks.slices
        key = None if slices is None else slices.key
        if self.prometheus is None:
            found = live.evidence(before, self.scrape_tracks(first_release), sent, policy,
                                  slice_key=key)
        else:
            before, after = self.read_prometheus(first_release, began)
            found = live.evidence(before, after, sent, policy, via=self.prometheus.via,
                                  slice_key=key)
        return verdict, found, lag

    def _tracks(self, first_release: bool) -> list[tuple[Track, str]]:
        """The tracks a step compares, each with its pods' label selector."""
        return self._selected((Track.CANARY,) if first_release
                              else (Track.CANARY, Track.PRIMARY))

    def _selected(self, tracks: tuple[Track, ...]) -> list[tuple[Track, str]]:
        slots = self.kube.slots()
        return [(track, label_selector(self.endpoint, slots.of(track))) for track in tracks]

    def read_prometheus(self, first_release: bool, began: float
                        ) -> tuple[dict[str, live.TrackScrape], dict[str, live.TrackScrape]]:
        """Each track's pods' counters at ``began`` and now, from the configured Prometheus."""
        return self.read_prometheus_selected(self._tracks(first_release), began)

    def read_prometheus_selected(self, tracks: list[tuple[Track, str]], began: float
                                 ) -> tuple[dict[str, live.TrackScrape],
                                            dict[str, live.TrackScrape]]:
        """``tracks``' pods' counters at ``began`` and now, from the configured Prometheus."""
        assert self.prometheus is not None
        prometheus = self.prometheus

        def names(label: str) -> Callable[[], list[str]]:
            return lambda: [str(p["metadata"]["name"])
                            for p in running(self.kube.cluster.pods(self.namespace, label))]

        try:
            pods = {track.value: names(label)() for track, label in tracks}
        except PipelineError as exc:
            return {}, {track.value: live.TrackScrape({}, (str(exc),)) for track, _ in tracks}

        def read() -> tuple[dict[str, live.TrackScrape], dict[str, live.TrackScrape]]:
            return prometheus.read_window(self.namespace, pods, began)

        return read()

    def scrape_tracks(self, first_release: bool) -> dict[str, live.TrackScrape]:
        """Each track's pods' request counters now (``/metrics`` through the pod proxy)."""
        return self.scrape_selected(self._tracks(first_release))

    def watch(self, track: Track) -> TrackWindow:
        """Start counting what real users send ``track``'s pods (a ``ports.LiveWindow``)."""
        return TrackWindow(self, self._selected((track,)))

    def shadow(self, percent: int, hold: timedelta) -> ShadowCopies:
        """Tell the primary's pods to copy ``percent`` of live requests to the canary."""
        return ShadowCopies(self.kube, self.access, percent, hold,
                            self.settings.release.load_rate)

    def scrape_selected(self, tracks: list[tuple[Track, str]]) -> dict[str, live.TrackScrape]:
        """The request counters of ``tracks``' pods now (``(track, label selector)`` each)."""
        out: dict[str, live.TrackScrape] = {}
        for track, label in tracks:

            def read(label: str = label) -> tuple[dict[str, str], list[str]]:
                return scrape(self.access, self.namespace,
                              self.kube.cluster.pods(self.namespace, label))

            try:
                texts, failures = read()
            except PipelineError as exc:
                texts, failures = {}, [str(exc)]
            pods: dict[str, live.PodTraffic] = {}
            for name, text in texts.items():
                try:
                    pods[name] = live.PodTraffic.of(text)
                except ValueError as exc:
                    failures.append(f"pod {name}: /metrics unreadable: {exc}")
            out[track.value] = live.TrackScrape(pods, tuple(failures))
        return out

    def agreement(self, version: ModelVersion, files: ModelFiles,
                  first_release: bool) -> agreement.AgreementVerdict:
        """The same inputs to canary and primary; their outputs compared (``domain.agreement``).

        The inputs are the input example's rows, then the sample set's (``samples`` in the
        version's run). A sample set that is named but missing or unfit fails the check.
        """
        check = self.endpoint.spec.canary.checks.agreement
        policy = agreement_policy(self.endpoint)
        if first_release or not check.enabled:
            return agreement.AgreementVerdict(agreement.Outcome.SKIPPED, (
                "first release: no primary to compare with" if first_release
                else "off (agreement.enabled: false)"))
        example, unfit = None, "the version has no input example and agreement.samples is unset"
        if files.serving_example is not None:
            try:
                example = sample_set.from_payload(files.serving_example)
            except ValueError as exc:
                unfit = f"the input example cannot be split into rows: {exc}"
        try:
            samples = None if check.samples is None else sample_set.parse_samples(
                self.models.read_run_artifact(version.run_id or "(none)", check.samples),
                check.samples)
            batch = sample_set.merge(example, samples, check.max_samples)
        except (ValueError, PipelineError) as exc:
            return agreement.AgreementVerdict(
                agreement.Outcome.FAIL, f"sample set {check.samples} of run {version.run_id} "
                f"unusable: {exc}", on_failure=policy.on_failure)
        if batch is None:
            return agreement.AgreementVerdict(agreement.Outcome.INCONCLUSIVE, unfit,
                                              on_failure=policy.on_failure)
        body = batch.payload()

        def both() -> list[agreement.Answer]:
            with self.access.client(timeout=60) as http:
                return [ask(http, self.access.url(self.namespace, service_name(
                    self.endpoint, track), "invocations"), body)
                    for track in (Track.CANARY, Track.PRIMARY)]

        canary, primary = both()
        return agreement.judge(canary, primary, policy)


class TrackWindow:
    """One track's live traffic since the window opened (a ``ports.LiveWindow``).

    Read as a step's live traffic is: the pods' own ``/metrics`` now and at the opening,
    or the configured Prometheus' counters at both moments.
    """

    def __init__(self, evidence: PodEvidence, tracks: list[tuple[Track, str]]) -> None:
        self.evidence = evidence
        self.tracks = tracks
        self.began = time.time()
        self.before = {} if evidence.prometheus else evidence.scrape_selected(tracks)

    def look(self, policy: AnalysisPolicy, looks: int) -> live.LiveEvidence:
        """What real users sent the track since the opening, judged against the SLOs alone."""
        (track, _), = self.tracks
        evidence, via = self.evidence, "pod metrics"
        if evidence.prometheus is None:
            before, after = self.before, evidence.scrape_selected(self.tracks)
        else:
            before, after = evidence.read_prometheus_selected(self.tracks, self.began)
            via = evidence.prometheus.via
        return judge_bake(before.get(track.value, live.TrackScrape()),
                          after.get(track.value, live.TrackScrape()), policy, looks, via=via)
