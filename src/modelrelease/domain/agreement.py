"""Output agreement, pure: do the canary and the primary answer the same inputs alike?

The same batch of inputs (the model's input example plus a sample set, see
``domain.sample_set``) goes to both arms; this module judges the two answers. Latency and
error checks cannot see a canary that is fast and healthy but answers differently; this one can.

**Kinds.** A *classification* (class ids, labels: every output an int, bool or string) is
judged by its exact agreement rate, the share of rows where both arms answer the same
(``min_agreement``). A *regression* (scores, any float in the primary's outputs) is judged by
distribution distances between the two arms' output values: the population stability index
(``max_psi``) and the two-sample Kolmogorov-Smirnov statistic (``max_ks``). ``Kind.AUTO``
picks one from the primary's outputs. Both figures are reported whatever is judged; a class
PSI (over the classes' shares) is reported for classifiers too.

**PSI.** ``sum((a - e) * ln(a / e))`` over bins, ``e`` the primary's share, ``a`` the
canary's. Numeric bins are cut at quantiles of both arms pooled (so a canary that answers one
constant still lands in bins of its own), at most 10 and at least 5 values per bin on
average; every bin count gets 0.5 added (Laplace smoothing), so an empty bin is finite.

**Outcomes.** FAIL when a figure breaches its threshold, when the arms answer different
numbers of rows, or when the canary's answer is unusable where the primary's is fine.
INCONCLUSIVE when fewer than ``min_samples`` rows were compared (a 3-row input example
cannot tell a retrain from a broken model) or the primary's answer is unusable: the step is
then judged on latency and errors alone. SKIPPED when there is nothing to compare with (a
first release) or the check is off. What a FAIL does to the step is ``on_failure``: roll it
back, or hold it (inconclusive: the step is extended, then rolled back if it never passes).
The verdict is one check of the step (``AgreementVerdict.check``), which
``domain.verdict.step_verdict`` combines with the step's others.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from modelrelease.domain import analysis

__all__ = [
    "AgreementPolicy",
    "AgreementVerdict",
    "Answer",
    "Kind",
    "OnFailure",
    "Outcome",
    "agreement_rate",
    "category_psi",
    "compare",
    "detect_kind",
    "judge",
    "ks_statistic",
    "predictions",
    "psi",
]

MAX_BINS = 10
"""Most numeric PSI bins."""
ROWS_PER_BIN = 5
"""Fewest values per numeric PSI bin, on average, of the smaller arm."""
SMOOTHING = 0.5
"""Added to every bin count before shares are taken."""


class Kind(StrEnum):
    """How outputs are compared."""

    AUTO = "auto"
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


class OnFailure(StrEnum):
    """What an agreement failure does to the step."""

    ROLLBACK = "rollback"
    HOLD = "hold"


class Outcome(StrEnum):
    """The agreement check's result."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class AgreementPolicy:
    """The thresholds (from ``spec.canary.checks.agreement``)."""

    kind: Kind = Kind.AUTO
    min_agreement: float = 0.95
    max_psi: float | None = None
    max_ks: float | None = None
    min_samples: int = 20
    on_failure: OnFailure = OnFailure.ROLLBACK


@dataclass(frozen=True)
class AgreementVerdict:
    """The check's outcome, why, and every number it rests on."""

    outcome: Outcome
    reason: str
    kind: Kind | None = None
    rows: int = 0
    agreement: float | None = None
    psi: float | None = None
    ks: float | None = None
    on_failure: OnFailure = OnFailure.ROLLBACK

    @property
    def check(self) -> analysis.Check:
        """The agreement as one check of the step (see ``domain.verdict``).

        A FAIL fails the step (``on_failure: rollback``) or holds it (HOLD, ``hold``); a
        PASS cannot pass a step on its own; INCONCLUSIVE and SKIPPED are NO_DATA, which
        leaves the step to latency and errors.
        """
        status = analysis.CheckStatus.NO_DATA
        if self.outcome is Outcome.PASS:
            status = analysis.CheckStatus.PASS
        elif self.outcome is Outcome.FAIL:
            status = (analysis.CheckStatus.FAIL if self.on_failure is OnFailure.ROLLBACK
                      else analysis.CheckStatus.HOLD)
        return analysis.Check(analysis.Metric.AGREEMENT, status, None, None, None, None, None,
                              f"output agreement {self.outcome}: {self.reason}")

    @property
    def numbers(self) -> dict[str, float]:
        """The figures, for the release record (``agreement_rate``, ``agreement_psi``...)."""
        out = {"agreement_rows": float(self.rows)} if self.rows else {}
        for key, value in (("agreement_rate", self.agreement), ("agreement_psi", self.psi),
                           ("agreement_ks", self.ks)):
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True)
class Answer:
    """One arm's answer to the batch: HTTP status (None: no answer), parsed body, detail."""

    status: int | None
    body: Any = None
    detail: str = ""


# -- figures -----------------------------------------------------------------------------


def agreement_rate(canary: Sequence[Any], primary: Sequence[Any]) -> float:
    """Share of rows where both arms answer exactly the same (``1 == 1.0`` counts as same).

    Raises:
        ValueError: the arms have different lengths, or none.
    """
    if len(canary) != len(primary) or not primary:
        raise ValueError(f"cannot pair {len(canary)} canary and {len(primary)} primary rows")
    same = sum(1 for c, p in zip(canary, primary, strict=True) if c == p)
    return same / len(primary)


def _psi_from_counts(expected: Sequence[int], actual: Sequence[int]) -> float:
    e_total = sum(expected) + SMOOTHING * len(expected)
    a_total = sum(actual) + SMOOTHING * len(actual)
    total = 0.0
    for e_count, a_count in zip(expected, actual, strict=True):
        e, a = (e_count + SMOOTHING) / e_total, (a_count + SMOOTHING) / a_total
        total += (a - e) * math.log(a / e)
    return total


def psi(expected: Sequence[float], actual: Sequence[float], bins: int = MAX_BINS) -> float:
    """Population stability index of ``actual`` against ``expected`` (numbers).

    Bins are right-closed, cut at the pooled values' quantiles ``k / bins`` (duplicates
    merged). Zero for identical samples, never negative, symmetric in its arguments.

    Raises:
        ValueError: either side is empty, or ``bins`` is below 2.
    """
    if not expected or not actual or bins < 2:
        raise ValueError(f"psi needs values on both sides and 2+ bins (got {len(expected)}, "
                         f"{len(actual)}, {bins} bins)")
    pooled = sorted([*expected, *actual])
    last = len(pooled) - 1
    edges = sorted({pooled[k * last // bins] for k in range(1, bins)})

    def counts(values: Sequence[float]) -> list[int]:
        out = [0] * (len(edges) + 1)
        for value in values:
            out[bisect_left(edges, value)] += 1
        return out

    return _psi_from_counts(counts(expected), counts(actual))


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def category_psi(expected: Sequence[Any], actual: Sequence[Any]) -> float:
    """PSI over categories (each distinct output a bin), e.g. a classifier's class shares.

    Raises:
        ValueError: either side is empty.
    """
    if not expected or not actual:
        raise ValueError(f"psi needs values on both sides (got {len(expected)}, "
                         f"{len(actual)})")
    e_counts, a_counts = Counter(map(_key, expected)), Counter(map(_key, actual))
    keys = sorted(e_counts.keys() | a_counts.keys())
    return _psi_from_counts([e_counts[k] for k in keys], [a_counts[k] for k in keys])


def ks_statistic(x: Sequence[float], y: Sequence[float]) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two ECDFs.

    Raises:
        ValueError: either side is empty.
    """
    if not x or not y:
        raise ValueError(f"ks needs values on both sides (got {len(x)}, {len(y)})")
    xs, ys = sorted(x), sorted(y)
    return max(abs(bisect_right(xs, v) / len(xs) - bisect_right(ys, v) / len(ys))
               for v in {*xs, *ys})


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    if isinstance(value, Mapping):
        return [leaf for key in sorted(value) for leaf in _leaves(value[key])]
    return [value]


def detect_kind(outputs: Sequence[Any]) -> Kind:
    """REGRESSION when any output value is a float, else CLASSIFICATION."""
    floats = any(isinstance(v, float) for row in outputs for v in _leaves(row))
    return Kind.REGRESSION if floats else Kind.CLASSIFICATION


def _numbers(outputs: Sequence[Any]) -> tuple[list[float], Any]:
    """The finite numbers among the outputs' values, and the first value that is not one."""
    values: list[float] = []
    for leaf in (v for row in outputs for v in _leaves(row)):
        if isinstance(leaf, bool) or not isinstance(leaf, int | float) or not math.isfinite(
                leaf):
            return values, leaf
        values.append(float(leaf))
    return values, None


def predictions(body: Any) -> list[Any]:
    """One output per row from a scoring response (MLflow's ``{"predictions": ...}``).

    Column-oriented predictions (``{"predictions": {"a": [...], "b": [...]}}``) become one
    mapping per row; a bare JSON list is taken as the predictions.

    Raises:
        ValueError: the response holds no predictions, or columns of unequal lengths.
    """
    if isinstance(body, list):
        return body
    if not isinstance(body, Mapping) or "predictions" not in body:
        raise ValueError(f"no 'predictions' in the response: {str(body)[:200]}")
    found = body["predictions"]
    if isinstance(found, list):
        return found
    if isinstance(found, Mapping) and all(isinstance(v, list) for v in found.values()):
        lengths = {len(v) for v in found.values()}
        if len(lengths) > 1:
            raise ValueError(f"prediction columns of unequal lengths {sorted(lengths)}")
        rows = next(iter(lengths), 0)
        return [{k: v[i] for k, v in found.items()} for i in range(rows)]
    raise ValueError(f"'predictions' is a {type(found).__name__}, expected a list or columns")


# -- the verdict ---------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def compare(canary: Sequence[Any], primary: Sequence[Any],
            policy: AgreementPolicy) -> AgreementVerdict:
    """Judge two arms' outputs for the same rows (see the module doc)."""
    action = policy.on_failure
    if len(canary) != len(primary):
        return AgreementVerdict(
            Outcome.FAIL, f"canary answered {len(canary)} predictions where the primary "
                          f"answered {len(primary)} for the same inputs", on_failure=action)
    rows = len(primary)
    if not rows:
        return AgreementVerdict(Outcome.INCONCLUSIVE, "no rows to compare", on_failure=action)
    kind = detect_kind(primary) if policy.kind is Kind.AUTO else policy.kind
    rate = agreement_rate(canary, primary)
    ks: float | None = None
    if kind is Kind.CLASSIFICATION:
        distance = category_psi(primary, canary)
    else:
        expected, bad = _numbers(primary)
        if bad is not None or not expected:
            return AgreementVerdict(
                Outcome.INCONCLUSIVE, f"regression outputs must be numbers; the primary "
                                      f"answers {bad!r}: set kind: classification",
                kind, rows, rate, on_failure=action)
        actual, wrong = _numbers(canary)
        if wrong is not None or not actual:
            return AgreementVerdict(
                Outcome.FAIL, f"canary answers {wrong!r} where the primary answers numbers",
                kind, rows, rate, on_failure=action)
        bins = max(2, min(MAX_BINS, min(len(expected), len(actual)) // ROWS_PER_BIN))
        distance, ks = psi(expected, actual, bins), ks_statistic(actual, expected)
    figures = (f"{rate:.1%} of {rows} rows agree exactly, "
               f"{'class ' if kind is Kind.CLASSIFICATION else ''}PSI {_fmt(distance)}"
               + ("" if ks is None else f", KS {_fmt(ks)}"))
    made = AgreementVerdict(Outcome.PASS, "", kind, rows, rate, distance, ks, action)
    if rows < policy.min_samples:
        return replace(made, outcome=Outcome.INCONCLUSIVE, reason=(
            f"not judged: only {rows} rows compared (minSamples {policy.min_samples}); log a "
            f"sample set and name it in agreement.samples ({figures})"))
    breaches: list[str] = []
    if kind is Kind.CLASSIFICATION and rate < policy.min_agreement:
        breaches.append(f"{rate:.1%} of {rows} rows agree (minAgreement "
                        f"{policy.min_agreement:.1%})")
    if policy.max_psi is not None and distance > policy.max_psi:
        breaches.append(f"PSI {_fmt(distance)} > maxPsi {policy.max_psi:g}")
    if ks is not None and policy.max_ks is not None and ks > policy.max_ks:
        breaches.append(f"KS {_fmt(ks)} > maxKs {policy.max_ks:g}")
    if breaches:
        return replace(made, outcome=Outcome.FAIL, reason=(
            f"outputs disagree with the primary's: {'; '.join(breaches)} ({kind})"))
    return replace(made, reason=f"outputs agree with the primary's: {figures} ({kind})")


def _outputs(answer: Answer, arm: str) -> list[Any] | str:
    """The arm's predictions, or why there are none."""
    if answer.status != 200:
        return (f"{arm} answered the batch with {answer.status or 'no answer'}: "
                f"{answer.detail[:200]}")
    try:
        return predictions(answer.body)
    except ValueError as exc:
        return f"{arm}'s answer: {exc}"


def judge(canary: Answer, primary: Answer, policy: AgreementPolicy) -> AgreementVerdict:
    """Judge both arms' answers to the same batch.

    A primary that cannot answer makes the check inconclusive (nothing to compare with); a
    canary that answers an error or garbage where the primary answers fails it. No answer at
    all from the canary (a timeout, a dropped connection) is inconclusive: the latency and
    error checks see it.
    """
    expected = _outputs(primary, "primary")
    if isinstance(expected, str):
        return AgreementVerdict(Outcome.INCONCLUSIVE, expected, on_failure=policy.on_failure)
    actual = _outputs(canary, "canary")
    if isinstance(actual, str):
        outcome = Outcome.INCONCLUSIVE if canary.status is None else Outcome.FAIL
        return AgreementVerdict(outcome, actual, on_failure=policy.on_failure)
    return compare(actual, expected, policy)
