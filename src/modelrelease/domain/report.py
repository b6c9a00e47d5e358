"""The release report (markdown): timeline, per-step numbers for both arms, verdict, cost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modelrelease.domain.analysis import ArmStats


@dataclass(frozen=True)
class StepRecord:
    """What one canary step measured."""

    step: int
    weight: int
    outcome: str
    canary: ArmStats
    primary: ArmStats
    reasons: tuple[str, ...]


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.2f}%"


def render_report(*, endpoint: str, version: str, image: str, outcome: str, reason: str,
                  timeline: Sequence[tuple[float, str]], steps: Sequence[StepRecord],
                  canary_cost_per_hour: float | None) -> str:
    """The release report as markdown."""
    lines = [f"# Release of `{endpoint}`: {outcome}", "",
             f"- model version: **{version}**", f"- image: `{image}`",
             f"- outcome: **{outcome}** — {reason}"]
    if canary_cost_per_hour is not None:
        lines.append(f"- canary cost: {canary_cost_per_hour:.4f} per hour "
                     f"({canary_cost_per_hour * 730:.2f} per month if left running)")
    lines += ["", "## Timeline", "", "| t (s) | event |", "|---:|---|"]
    lines += [f"| {t:.1f} | {text} |" for t, text in timeline]
    if steps:
        lines += ["", "## Steps", "",
                  "| step | weight | arm | requests | errors | p50 ms | p95 ms | p99 ms | "
                  "verdict |", "|---:|---:|---|---:|---:|---:|---:|---:|---|"]
        for record in steps:
            for arm, numbers in (("canary", record.canary), ("primary", record.primary)):
                lines.append(
                    f"| {record.step} | {record.weight}% | {arm} | {numbers.requests} | "
                    f"{_rate(numbers.error_rate)} | {_ms(numbers.p50_ms)} | "
                    f"{_ms(numbers.p95_ms)} | {_ms(numbers.p99_ms)} | "
                    f"{record.outcome if arm == 'canary' else ''} |")
        lines += ["", "## Verdicts", ""]
        for record in steps:
            lines += [f"- step {record.step}: {r}" for r in record.reasons]
    return "\n".join(lines) + "\n"
