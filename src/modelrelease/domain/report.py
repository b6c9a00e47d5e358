"""The release report (markdown): timeline, per-step numbers, output agreement, verdicts, cost.

Each step's rows say where their numbers came from: ``generated load`` (the judge's own
requests) or ``live traffic (pod metrics)`` / ``live traffic (Prometheus URL)`` (what real
users sent each arm meanwhile, read from the pods or from a Prometheus server).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modelrelease.domain.agreement import AgreementVerdict
from modelrelease.domain.analysis import ArmStats, SliceRow
from modelrelease.domain.live import LiveEvidence
from modelrelease.domain.shadow import ShadowEvidence


@dataclass(frozen=True)
class StepRecord:
    """What one canary step measured."""

    step: int
    weight: int
    outcome: str
    canary: ArmStats
    primary: ArmStats
    reasons: tuple[str, ...]
    agreement: AgreementVerdict | None = None
    live: LiveEvidence | None = None
    slices: tuple[SliceRow, ...] = ()
    slice_key: str = ""  # where the slice value was ("header X-Tenant", "column locale")
    shadow: ShadowEvidence | None = None  # a shadow step's copies of live requests
    router: str = "replica ratio"  # what split the traffic (the TrafficRouter)

    @property
    def traffic(self) -> str:
        """``10%`` or ``shadow 100%`` (copies; no users)."""
        return f"shadow {self.shadow_share}%" if self.shadow_share else f"{self.weight}%"

    @property
    def shadow_share(self) -> int:
        """A shadow step's share copied (0: a weighted step)."""
        return 0 if self.shadow is None else self.shadow.percent


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.2f}%"


def render_report(*, endpoint: str, version: str, image: str, outcome: str, reason: str,
                  timeline: Sequence[tuple[float, str]], steps: Sequence[StepRecord],
                  canary_cost_per_hour: float | None, reached: str | None = None,
                  approvals: Sequence[str] = ()) -> str:
    """The release report as markdown.

    ``reached``: how the checks reached the pods; ``approvals``: the approval questions'
    answers, one line each.
    """
    lines = [f"# Release of `{endpoint}`: {outcome}", "",
             f"- model version: **{version}**", f"- image: `{image}`",
             f"- outcome: **{outcome}** — {reason}"]
    if reached is not None:
        lines.append(f"- checks reached the pods through {reached}")
    if canary_cost_per_hour is not None:
        lines.append(f"- canary cost: {canary_cost_per_hour:.4f} per hour "
                     f"({canary_cost_per_hour * 730:.2f} per month if left running)")
    if approvals:
        lines += ["", "## Approvals", ""] + [f"- {line}" for line in approvals]
    lines += ["", "## Timeline", "", "| t (s) | event |", "|---:|---|"]
    lines += [f"| {t:.1f} | {text} |" for t, text in timeline]
    if steps:
        lines += ["", "## Steps", "",
                  "| step | weight | arm | requests | errors | p50 ms | p95 ms | p99 ms | "
                  "verdict | source |", "|---:|---:|---|---:|---:|---:|---:|---:|---|---|"]
        for record in steps:
            rows = [("canary", record.canary, "generated load"),
                    ("primary", record.primary, "generated load")]
            if record.live is not None and record.live.used:
                rows += [(arm, numbers, f"live traffic ({record.live.via})")
                         for arm, numbers in (("canary", record.live.canary),
                                              ("primary", record.live.primary))
                         if numbers is not None]
            if record.shadow is not None and record.shadow.copies:
                rows += [(arm, numbers, "shadow (copies of live requests)")
                         for arm, numbers in (("canary", record.shadow.canary),
                                              ("primary", record.shadow.primary))
                         if numbers is not None]
            for arm, numbers, source in rows:
                lines.append(
                    f"| {record.step} | {record.traffic} | {arm} | {numbers.requests} | "
                    f"{_rate(numbers.error_rate)} | {_ms(numbers.p50_ms)} | "
                    f"{_ms(numbers.p95_ms)} | {_ms(numbers.p99_ms)} | "
                    f"{record.outcome if (arm, source) == ('canary', 'generated load') else ''}"
                    f" | {source} |")
        lines += _slices(steps)
        lines += _agreement([(r.step, r.agreement) for r in steps if r.agreement is not None])
        lines += ["", "## Verdicts", ""]
        for record in steps:
            sources = [record.live.source if record.live is not None else "generated load",
                       *([record.shadow.source] if record.shadow is not None else [])]
            lines.append(f"- step {record.step}: router: {record.router}; evidence: "
                         f"{' + '.join(sources)}")
            lines += [f"- step {record.step}: {r}" for r in record.reasons]
    return "\n".join(lines) + "\n"


def _slices(steps: Sequence[StepRecord]) -> list[str]:
    """The slice table: each slice's numbers per arm and source, and the judge's word."""
    rows = [(record.step, row, "generated load") for record in steps for row in record.slices]
    rows += [(record.step, row, f"live traffic ({record.live.via})") for record in steps
             if record.live is not None for row in record.live.slices]
    if not rows:
        return []
    key = next((r.slice_key for r in steps if r.slice_key), "")
    lines = ["", "## Slices", "",
             "Judged per slice" + (f" ({key})" if key else "") + " of the generated load "
             "and of live traffic (the pods count requests per slice value).", "",
             "| step | slice | source | canary requests | primary requests | canary errors | "
             "primary errors | canary p95 ms | primary p95 ms | judged |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for step, row, source in sorted(rows, key=lambda r: (r[0], r[2] != "generated load")):
        value = row.value.replace("|", r"\|")
        lines.append(f"| {step} | {value} | {source} | {row.canary.requests} | "
                     f"{row.primary.requests} | {_rate(row.canary.error_rate)} | "
                     f"{_rate(row.primary.error_rate)} | {_ms(row.canary.p95_ms)} | "
                     f"{_ms(row.primary.p95_ms)} | {row.status} |")
    return lines


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _agreement(steps: Sequence[tuple[int, AgreementVerdict]]) -> list[str]:
    """The output-agreement table: rows compared, exact agreement, PSI and KS per step."""
    if not steps:
        return []
    lines = ["", "## Output agreement", "",
             "| step | outcome | kind | rows | agreement | PSI | KS | why |",
             "|---:|---|---|---:|---:|---:|---:|---|"]
    for step, found in steps:
        rate = "–" if found.agreement is None else f"{found.agreement * 100:.1f}%"
        why = found.reason.replace("|", r"\|")
        lines.append(f"| {step} | {found.outcome} | {found.kind or '–'} | {found.rows} | "
                     f"{rate} | {_figure(found.psi)} | {_figure(found.ks)} | {why} |")
    return lines
