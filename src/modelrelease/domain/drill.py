"""Rollback drills: what a drill may start from, whether it held, and its report. Pure.

A drill releases the current primary's version again as a canary with an injected fault
(``domain.fault``) under a policy that never promotes (``RolloutPolicy.drill``). It holds
when every part does:

1. the pipeline detected the fault: the rollback was decided by a check, not by the
   drill's own "passed every step" rule (:data:`~modelrelease.domain.rollout.UNDETECTED`);
2. the canary was rolled back, and the times were measured: time to detect (canary
   deployed -> rollback decided) and time to restore (-> canary gone, primary alone);
3. the primary served throughout: every request of the background client succeeded;
4. the previous version is still restorable: each :class:`Check` of it passed (its image
   digest still pulls, its MLflow version still resolves).
"""

from __future__ import annotations

from dataclasses import dataclass

from modelrelease.domain.rollout import UNDETECTED, Milestones
from modelrelease.spec import ModelEndpointStatus, ReleasePhase, TrackStatus

SETTLED = (ReleasePhase.PROMOTED, ReleasePhase.ROLLED_BACK)
"""Phases an endpoint may be drilled in: no release in flight."""


@dataclass(frozen=True)
class Check:
    """One part of a drill: what was checked, whether it held, and the detail."""

    what: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class DrillEvidence:
    """What a drill observed.

    Attributes:
        rolled_back: Whether the drill's release ended rolled back.
        reason: The release's final reason.
        times: When the canary was deployed, the rollback decided and done.
        primary_ok: Requests the primary answered well while the drill ran.
        primary_failures: One line per request it did not.
        restorable: The checks of the previous version.
    """

    rolled_back: bool
    reason: str
    times: Milestones
    primary_ok: int
    primary_failures: tuple[str, ...]
    restorable: tuple[Check, ...]


@dataclass(frozen=True)
class DrillVerdict:
    """Whether a drill held, each part's check, and its times in seconds."""

    passed: bool
    parts: tuple[Check, ...]
    time_to_detect_s: float | None
    time_to_restore_s: float | None

    @property
    def reason(self) -> str:
        """The parts that did not hold, or a one-line summary of a drill that held."""
        failed = [f"{p.what}: {p.detail}" for p in self.parts if not p.ok]
        if failed:
            return "; ".join(failed)
        return (f"held: fault detected in {self.time_to_detect_s:.1f}s, primary alone again "
                f"{self.time_to_restore_s:.1f}s later, previous version restorable")


def drill_blocker(status: ModelEndpointStatus | None) -> str | None:
    """Why the endpoint cannot be drilled now (no primary, a release in flight), or None."""
    if status is None or status.primary is None:
        return "it has no primary to drill: release it first"
    if status.phase not in SETTLED:
        return f"a release is in flight (phase {status.phase}): drill once it has ended"
    if not status.primary.image or not status.primary.digest:
        return "its primary has no image digest recorded: release it again first"
    return None


def previous_release(status: ModelEndpointStatus, repository: str) -> TrackStatus | None:
    """What a rollback would restore: the latest promoted release before the current primary.

    The current primary is the last promoted history entry with its digest; an earlier
    promoted entry with another digest is the previous release (its image is
    ``repository@digest``). With none, the current primary itself.
    """
    primary = status.primary
    if primary is None:
        return None
    promoted = [h for h in status.history if h.phase == ReleasePhase.PROMOTED and h.digest]
    current = [i for i, h in enumerate(promoted) if h.digest == primary.digest]
    before = promoted[:current[-1]] if current else promoted
    for entry in reversed(before):
        if entry.digest != primary.digest:
            return TrackStatus(version=entry.version, digest=entry.digest,
                               image=f"{repository}@{entry.digest}")
    return primary


def _span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 3)


def judge_drill(evidence: DrillEvidence) -> DrillVerdict:
    """Decide whether a drill held (see the module doc), part by part."""
    times = evidence.times
    detect = _span(times.canary_deployed, times.rollback_decided)
    restore = _span(times.rollback_decided, times.rolled_back)
    if not evidence.rolled_back:
        detected = Check("fault detected", False,
                         f"the faulty canary was not rolled back: {evidence.reason}")
    elif UNDETECTED in evidence.reason:
        detected = Check("fault detected", False, "the faulty canary passed every check; "
                                                  "the drill rolled it back itself")
    else:
        detected = Check("fault detected", True, evidence.reason)
    timed = detect is not None and restore is not None
    restored = Check("rolled back and timed", evidence.rolled_back and timed,
                     f"detected after {detect:.1f}s, primary alone {restore:.1f}s later"
                     if timed else "the release's timeline has no canary start, rollback "
                                   "decision or rollback end to time")
    total = evidence.primary_ok + len(evidence.primary_failures)
    if evidence.primary_failures:
        served = Check("primary served throughout", False,
                       f"{len(evidence.primary_failures)} of {total} requests failed, first: "
                       f"{evidence.primary_failures[0]}")
    elif total == 0:
        served = Check("primary served throughout", False,
                       "no request reached the primary during the drill, so nothing shows "
                       "it served")
    else:
        served = Check("primary served throughout", True, f"{total} of {total} requests "
                                                          "answered")
    parts = (detected, restored, served, *evidence.restorable)
    return DrillVerdict(all(p.ok for p in parts), parts, detect, restore)


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def render_drill_report(*, endpoint: str, fault: str, version: str,
                        previous: TrackStatus | None, verdict: DrillVerdict,
                        release_report: str) -> str:
    """The drill report as markdown: verdict, times, each part, then the release's report."""
    outcome = "passed" if verdict.passed else "FAILED"
    back = "–" if previous is None else f"version {previous.version} (`{previous.image}`)"
    lines = [f"# Rollback drill of `{endpoint}`: {outcome}", "",
             f"- fault: **{fault}** on a canary of the primary's version **{version}**",
             f"- time to detect: **{_seconds(verdict.time_to_detect_s)} s**",
             f"- time to restore: **{_seconds(verdict.time_to_restore_s)} s**",
             f"- previous version: {back}", f"- verdict: {verdict.reason}", "",
             "| part | held | detail |", "|---|---|---|"]
    lines += [f"| {p.what} | {'yes' if p.ok else '**no**'} | {p.detail.replace('|', '/')} |"
              for p in verdict.parts]
    if release_report:  # its headings one level down, under the drill's
        lines += ["", *("#" + line if line.startswith("#") else line
                        for line in release_report.rstrip("\n").splitlines())]
    return "\n".join(lines) + "\n"
