"""Benchmark: our sequential canary judge against Kayenta's and Flagger's, on simulated arms.

Run ``.venv/bin/python benchmarks/judge.py [--trials N] [--workers W]``. Prints one JSON
object per (scenario, judge) on stdout, progress on stderr. Nothing to start: the arms are
simulated (numpy), the judge is the real ``modelrelease.domain.analysis`` code.

Arms (per request: latency in ms and ok/error), primary shapes:
  ``lognormal``   median 40 ms, sigma 0.5 (p95 ~ 91 ms).
  ``heavy_tail``  95% lognormal (median 40 ms, sigma 0.35) + 5% Pareto (x_m 80 ms, shape 1.5).
  ``bimodal``     cache hits 70% (median 6 ms, sigma 0.25) + misses 30% (median 60 ms, sigma
                  0.3), rounded to whole ms (many ties, as coarse timers give).
Every arm fails 0.1% of requests unless the scenario says otherwise. A "+20% p95" canary
multiplies every latency by 1.2 (p50, p95 and p99 all +20%); the ``tail_only`` scenario
slows only the cache misses by 20% (p95 +20%, p50 unchanged); ``*_5pct_3x`` makes 5% of the
canary's requests 3x slower, the rest unchanged (the lognormal one, ``tail_5pct_3x``, has
the target; the other shapes are shown for the record). Null scenarios: identical arms;
``all_null_within_policy`` pools those whose error rate is within the policy's maximum. The
one with both arms at 0.5% errors (``breaches_policy``) is reported but not pooled: both
arms break the 0.1% limit, so a FAIL there is the absolute check doing its job (a canary
judge cannot tell 0.5% = 0.5% from 0.1% -> 2% at 400 requests per arm *and* stay
relative-only; see the report).
Sliced scenarios split each arm's requests into 10 slices (a tenant, a locale): one slice of
10% and nine of 10% each. ``slice_only_latency_+50%`` makes that one slice's canary
requests 50% slower, ``slice_only_errors_0.1%_to_10%`` raises its canary errors from 0.1% to
10%, the rest unchanged; ``null_10_slices_*`` are identical arms in 10 slices. These run
with ``SLICE_POLICY`` (max_requests 1000, max_slices 10: the judge checks each slice); the
baselines see the whole traffic, as they cannot slice.

Judges (``power``: share of regression trials judged FAIL; ``false_rollback``: share of
null trials judged FAIL; ``median_requests``: median requests per arm used):
  ``ours``  ``analysis.look`` over a growing window, stopping at the first PASS/FAIL. Policy:
            max_latency_regression 0.10, max_error_rate 0.1% (the primary's rate: a good
            model may have it; the test fails a canary *shown* to be above it), alpha 0.01
            over all checks and looks, 5 looks up to 400 requests per arm, Pocock-type
            spending. ``variants`` holds other designs (same trials) that motivated it.
            A second ``ours`` line per scenario (``policy``: max_requests=1500, looks=5)
            is the same judge with a step long enough for the tail checks. Targets are
            met when ``power_within_target_requests`` (trials judged FAIL within the
            target's requests per arm) reaches the target's power.
  ``kayenta_mwu``  Kayenta's NetflixACAJudge classifier, fixed horizon (400 requests per
            arm): per arm drop NaNs and outliers outside [min(p1, Q1-3 IQR), max(p99,
            Q3+3 IQR)]; no data if < 50 points; High when the lower end of the 98% confidence
            interval of the Hodges-Lehmann shift exceeds 0.25 x |estimate| and the mean ratio
            is >= 1. Latency: on per-request latencies (its most sensitive use). Errors:
            Kayenta judges metric time series, so on the error rate of 50 buckets of 8
            requests per arm. The CI is the order-statistic form of R's ``wilcox.test``.
            ``requests_for_equal_power``: the smallest horizon (on a grid, fewer trials)
            at which it reaches our power in that scenario; for targets beyond 400
            requests, ``power_at_target_requests`` is its power at the target's horizon.
  ``flagger_threshold``  Flagger's built-in checks at the end of the window (400 per arm):
            canary success rate >= 99% and canary p99 <= a limit. The p99 limit is set per
            shape, with hindsight, at the 99.5th percentile of the p99 that a good canary
            shows over 400 requests: a best case for a fixed threshold (about 0.5% false
            rollbacks by construction).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelrelease.domain import analysis
from modelrelease.domain.analysis import AnalysisPolicy, ArmSamples, Outcome, Samples, Spending

Arrays = tuple[np.ndarray, np.ndarray]  # latency_ms (trials, n), ok (trials, n)
Arm = tuple[np.ndarray, np.ndarray, np.ndarray | None]  # ... and slice index (trials, n)

HORIZON = 400
ERROR_RATE = 0.001

POLICY = AnalysisPolicy(
    max_latency_regression=0.10, max_error_rate=ERROR_RATE, min_requests=50,
    max_requests=HORIZON, looks=5, alpha=0.01, spending=Spending.POCOCK,
)
LONG_HORIZON = 1500
LONG_POLICY = POLICY.model_copy(update={"max_requests": LONG_HORIZON})
"""A step long enough for the tails: what a step of 150 s at 10 requests/s per arm plans."""
SLICES = 10
SLICE_POLICY = POLICY.model_copy(update={"max_requests": 1000, "max_slices": SLICES})
"""The sliced scenarios' step: 1,000 requests per arm in all, each of 10 slices judged."""
LONG_SLICE_POLICY = LONG_POLICY.model_copy(update={"max_slices": SLICES})
VARIANTS = {
    "obrien_fleming_5_looks": POLICY.model_copy(update={"spending": Spending.OBRIEN_FLEMING}),
    "pocock_10_looks": POLICY.model_copy(update={"looks": 10}),
    "fixed_horizon_1_look": POLICY.model_copy(update={"looks": 1}),
}


def lognormal(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    return 40.0 * scale * rng.lognormal(0.0, 0.5, shape)


def heavy_tail(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    body = 40.0 * rng.lognormal(0.0, 0.35, shape)
    tail = 80.0 * (1.0 - rng.random(shape)) ** (-1.0 / 1.5)
    return scale * np.where(rng.random(shape) < 0.05, tail, body)


def bimodal(
    rng: np.random.Generator, shape: tuple[int, int], scale: float, miss_scale: float = 1.0
) -> np.ndarray:
    hit = 6.0 * scale * rng.lognormal(0.0, 0.25, shape)
    miss = 60.0 * scale * miss_scale * rng.lognormal(0.0, 0.3, shape)
    return np.maximum(1.0, np.round(np.where(rng.random(shape) < 0.7, hit, miss)))


Shape = Callable[[np.random.Generator, tuple[int, int], float], np.ndarray]
SHAPES: dict[str, Shape] = {"lognormal": lognormal, "heavy_tail": heavy_tail, "bimodal": bimodal}


@dataclass(frozen=True)
class Scenario:
    name: str
    null: bool
    shape: str
    latency_scale: float = 1.0  # canary latency multiplier
    canary_error_rate: float = ERROR_RATE
    primary_error_rate: float = ERROR_RATE
    tail_only: bool = False
    slow_share: float = 0.0  # this share of canary requests ...
    slow_factor: float = 1.0  # ... is this many times slower, the rest unchanged
    target: tuple[float, int] | None = None  # (power, requests per arm) to reach
    breaches_policy: bool = False  # identical arms, both above the policy's max error rate
    sliced: bool = False  # requests in SLICES slices of equal share; slice 0 is affected:
    slice_factor: float = 1.0  # its canary latencies this many times slower
    slice_error_rate: float | None = None  # its canary error rate

    @property
    def policy(self) -> AnalysisPolicy:
        return SLICE_POLICY if self.sliced else POLICY

    @property
    def long_policy(self) -> AnalysisPolicy:
        return LONG_SLICE_POLICY if self.sliced else LONG_POLICY

    def arms(self, rng: np.random.Generator, trials: int, n: int) -> tuple[Arm, Arm]:
        shape = SHAPES[self.shape]
        primary = shape(rng, (trials, n), 1.0)
        if self.tail_only:
            canary = bimodal(rng, (trials, n), 1.0, miss_scale=self.latency_scale)
        else:
            canary = shape(rng, (trials, n), self.latency_scale)
        if self.slow_share:
            canary = canary * np.where(rng.random((trials, n)) < self.slow_share,
                                       self.slow_factor, 1.0)
        c_ok = rng.random((trials, n)) >= self.canary_error_rate
        p_ok = rng.random((trials, n)) >= self.primary_error_rate
        if not self.sliced:
            return (canary, c_ok, None), (primary, p_ok, None)
        c_slice = rng.integers(0, SLICES, (trials, n))
        p_slice = rng.integers(0, SLICES, (trials, n))
        hit = c_slice == 0
        canary = np.where(hit, canary * self.slice_factor, canary)
        if self.slice_error_rate is not None:
            c_ok = np.where(hit, rng.random((trials, n)) >= self.slice_error_rate, c_ok)
        return (canary, c_ok, c_slice), (primary, p_ok, p_slice)


SCENARIOS = [
    Scenario("lognormal_p95_+20%", False, "lognormal", 1.2, target=(0.95, 400)),
    Scenario("heavy_tail_p95_+20%", False, "heavy_tail", 1.2, target=(0.95, 400)),
    Scenario("bimodal_p95_+20%", False, "bimodal", 1.2, target=(0.95, 400)),
    Scenario("errors_0.1%_to_2%", False, "lognormal", canary_error_rate=0.02,
             target=(0.95, 500)),
    Scenario("bimodal_tail_only_p95_+20%", False, "bimodal", 1.2, tail_only=True,
             target=(0.90, 1000)),
    Scenario("tail_5pct_3x", False, "lognormal", slow_share=0.05, slow_factor=3.0,
             target=(0.90, 1500)),
    Scenario("heavy_tail_5pct_3x", False, "heavy_tail", slow_share=0.05, slow_factor=3.0),
    Scenario("bimodal_5pct_3x", False, "bimodal", slow_share=0.05, slow_factor=3.0),
    Scenario("null_lognormal", True, "lognormal"),
    Scenario("null_heavy_tail", True, "heavy_tail"),
    Scenario("null_bimodal", True, "bimodal"),
    Scenario("null_no_errors", True, "lognormal", canary_error_rate=0.0,
             primary_error_rate=0.0),
    Scenario("null_errors_0.5%_both_above_max", True, "heavy_tail", canary_error_rate=0.005,
             primary_error_rate=0.005, breaches_policy=True),
    Scenario("slice_only_latency_+50%", False, "lognormal", sliced=True, slice_factor=1.5,
             target=(0.90, 1000)),
    Scenario("slice_only_errors_0.1%_to_10%", False, "lognormal", sliced=True,
             slice_error_rate=0.10, target=(0.90, 1000)),
    Scenario("null_10_slices_lognormal", True, "lognormal", sliced=True),
    Scenario("null_10_slices_heavy_tail", True, "heavy_tail", sliced=True),
    Scenario("null_10_slices_bimodal", True, "bimodal", sliced=True),
]


# ---------------------------------------------------------------- ours (the real judge)

def run_ours(
    scenario: Scenario, policy: AnalysisPolicy, trials: int, seed: int
) -> list[tuple[bool, int]]:
    """(failed, requests per arm used) per trial, feeding the judge look by look."""
    rng = np.random.default_rng(seed)
    (c_lat, c_ok, c_slice), (p_lat, p_ok, p_slice) = scenario.arms(rng, trials,
                                                                    policy.max_requests)
    due = [policy.look_requests(k) for k in range(1, policy.looks + 1)]

    def labels(slices: np.ndarray | None, t: int, start: int, stop: int) -> tuple[str, ...]:
        return () if slices is None else tuple(f"s{v}" for v in slices[t, start:stop].tolist())

    results = []
    for t in range(trials):
        state = analysis.SequentialJudge()
        start = 0
        verdict = None
        for n in due:
            batch = Samples(
                ArmSamples(tuple(c_lat[t, start:n].tolist()), tuple(c_ok[t, start:n].tolist()),
                           labels(c_slice, t, start, n)),
                ArmSamples(tuple(p_lat[t, start:n].tolist()), tuple(p_ok[t, start:n].tolist()),
                           labels(p_slice, t, start, n)),
            )
            state, verdict = analysis.look(state, batch, policy)
            start = n
            if verdict.decided:
                break
        assert verdict is not None
        results.append((verdict.outcome is Outcome.FAIL, start))
    return results


# ---------------------------------------------------------------- Kayenta (numpy)

Z_99 = 2.3263478740408408  # two-sided 98% interval


def _kayenta_filter(values: np.ndarray) -> np.ndarray:
    """NaN where Kayenta's IQRDetector(factor=3, reduceSensitivity=true) drops a value."""
    q1, q3, p1, p99 = np.percentile(values, [25, 75, 1, 99], axis=1)
    iqr = q3 - q1
    low = np.minimum(p1, q1 - 3 * iqr)[:, None]
    high = np.maximum(p99, q3 + 3 * iqr)[:, None]
    return np.where((values < low) | (values > high), np.nan, values)


def _kth_difference(x: list[np.ndarray], y: list[np.ndarray], ranks: np.ndarray) -> np.ndarray:
    """Per trial, the ranks[t]-th smallest (1-based) of x_i - y_j, by bisection on counts."""
    out = np.empty(len(x))
    for t, (xs, ys) in enumerate(zip(x, y, strict=True)):
        # invariant: fewer than ranks[t] differences <= low, at least ranks[t] <= high
        low, high = xs[0] - ys[-1] - 1.0, xs[-1] - ys[0]
        for _ in range(60):
            mid = (low + high) / 2
            # differences <= mid: y_j >= x_i - mid
            count = int((len(ys) - np.searchsorted(ys, xs - mid, side="left")).sum())
            if count >= ranks[t]:
                high = mid
            else:
                low = mid
        # the order statistic itself: the smallest difference above low
        j = np.searchsorted(ys, xs - low, side="left") - 1
        out[t] = float(np.min(np.where(j >= 0, xs - ys[np.maximum(j, 0)], np.inf)))
    return out


def kayenta_fails(canary: np.ndarray, primary: np.ndarray) -> np.ndarray:
    """Kayenta's High classification (direction: increase) per trial (rows)."""
    canary, primary = _kayenta_filter(canary), _kayenta_filter(primary)
    xs = [np.sort(row[~np.isnan(row)]) for row in canary]
    ys = [np.sort(row[~np.isnan(row)]) for row in primary]
    n = np.array([len(v) for v in xs])
    m = np.array([len(v) for v in ys])
    enough = (n >= 50) & (m >= 50)
    identical = np.array([len(a) == len(b) and bool(np.all(a == b)) for a, b in zip(xs, ys,
                                                                                   strict=True)])
    pairs = n * m
    k = np.floor(pairs / 2 - Z_99 * np.sqrt(pairs * (n + m + 1) / 12.0)).astype(int)
    lower = _kth_difference(xs, ys, np.maximum(k, 1))
    median_low = _kth_difference(xs, ys, np.maximum((pairs + 1) // 2, 1))
    median_high = _kth_difference(xs, ys, pairs // 2 + 1)
    estimate = (median_low + median_high) / 2
    mean_ratio = np.array([a.mean() / b.mean() if b.mean() else 1.0 for a, b in zip(xs, ys,
                                                                                   strict=True)])
    return enough & ~identical & (lower > 0.25 * np.abs(estimate)) & (mean_ratio >= 1.0)


def kayenta_trials(scenario: Scenario, n: int, trials: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    (c_lat, c_ok, _), (p_lat, p_ok, _) = scenario.arms(rng, trials, n)
    latency = kayenta_fails(np.where(c_ok, c_lat, np.nan), np.where(p_ok, p_lat, np.nan))
    buckets = 50
    size = n // buckets
    c_err = 1.0 - c_ok[:, : size * buckets].reshape(trials, buckets, size).mean(axis=2)
    p_err = 1.0 - p_ok[:, : size * buckets].reshape(trials, buckets, size).mean(axis=2)
    errors = kayenta_fails(c_err, p_err)
    return latency | errors


# ---------------------------------------------------------------- Flagger (numpy)

def flagger_limit(shape: str, seed: int, trials: int = 20000) -> float:
    """p99 limit: the 99.5th percentile of a good canary's p99 over HORIZON requests."""
    rng = np.random.default_rng(seed)
    p99 = np.percentile(SHAPES[shape](rng, (trials, HORIZON), 1.0), 99, axis=1)
    return float(np.percentile(p99, 99.5))


def flagger_trials(scenario: Scenario, limit: float, trials: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    (c_lat, c_ok, _), _ = scenario.arms(rng, trials, HORIZON)
    p99 = np.nanpercentile(np.where(c_ok, c_lat, np.nan), 99, axis=1)
    success = c_ok.mean(axis=1)
    return (success < 0.99) | (p99 > limit)


# ---------------------------------------------------------------- driver

def _ours_job(args: tuple[Scenario, AnalysisPolicy, int, int]) -> list[tuple[bool, int]]:
    return run_ours(*args)


def _kayenta_job(args: tuple[Scenario, int, int, int]) -> list[bool]:
    return kayenta_trials(*args).tolist()


def _split(trials: int, workers: int) -> list[int]:
    return [c for i in range(workers) if (c := trials // workers + (i < trials % workers))]


def _ours(
    pool: ProcessPoolExecutor, scenario: Scenario, policy: AnalysisPolicy, trials: int,
    seed: int, workers: int,
) -> list[tuple[bool, int]]:
    jobs = [(scenario, policy, c, seed + i) for i, c in enumerate(_split(trials, workers))]
    return [r for part in pool.map(_ours_job, jobs) for r in part]


def _kayenta(
    pool: ProcessPoolExecutor, scenario: Scenario, n: int, trials: int, seed: int,
    workers: int,
) -> np.ndarray:
    jobs = [(scenario, n, c, seed + i) for i, c in enumerate(_split(trials, workers))]
    return np.array([r for part in pool.map(_kayenta_job, jobs) for r in part])


EQUAL_POWER_GRID = (100, 150, 200, 250, 300, 350, 400, 450, 500, 600, 700, 800, 1000, 1200,
                    1600)


def _line(scenario: Scenario, judge: str, failed: float, requests: float | None,
          **extra: Any) -> dict[str, Any]:
    return {
        "bench": "judge", "scenario": scenario.name, "null": scenario.null, "judge": judge,
        "power": None if scenario.null else round(failed, 4),
        "false_rollback": round(failed, 4) if scenario.null else None,
        "median_requests": requests, **extra,
    }


def _policy(policy: AnalysisPolicy) -> str:
    sliced = f", max_slices={policy.max_slices}" if policy.max_slices else ""
    return f"max_requests={policy.max_requests}, looks={policy.looks}{sliced}"


def _target(scenario: Scenario, runs: list[tuple[bool, int]]) -> dict[str, Any]:
    """The scenario's target and our figure against it: the share of trials judged FAIL
    within the target's requests per arm."""
    if scenario.target is None:
        return {"target": None}
    power, requests = scenario.target
    within = float(np.mean([f and n <= requests for f, n in runs]))
    return {"target": f"power>={power} with <={requests} requests per arm",
            "power_within_target_requests": round(within, 4), "target_met": within >= power}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=4000, help="trials of our judge")
    parser.add_argument("--long-trials", type=int, default=2000,
                        help="trials of our judge with the long step (LONG_POLICY)")
    parser.add_argument("--variant-trials", type=int, default=1000)
    parser.add_argument("--baseline-trials", type=int, default=2000)
    parser.add_argument("--equal-power-trials", type=int, default=600)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", default=None, help="comma-separated scenario names")
    args = parser.parse_args()
    scenarios = [s for s in SCENARIOS if args.only is None or s.name in args.only.split(",")]
    started = time.monotonic()
    limits = {shape: flagger_limit(shape, seed=99) for shape in SHAPES}
    null_fails: dict[str, list[bool]] = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for index, scenario in enumerate(scenarios):
            seed = 1000 * (index + 1)
            ours = _ours(pool, scenario, scenario.policy, args.trials, seed, args.workers)
            failed = float(np.mean([f for f, _ in ours]))
            requests = float(statistics.median(n for _, n in ours))
            extra: dict[str, Any] = {"trials": args.trials, "policy": _policy(scenario.policy),
                                     **_target(scenario, ours)}
            if scenario.breaches_policy:
                extra["breaches_policy"] = True
            if not scenario.sliced:  # the variants are designs of the unsliced judge
                variants = {}
                for name, policy in VARIANTS.items():
                    runs = _ours(pool, scenario, policy, args.variant_trials, seed,
                                 args.workers)
                    variants[name] = {
                        "fail_rate": round(float(np.mean([f for f, _ in runs])), 4),
                        "median_requests": float(statistics.median(n for _, n in runs)),
                    }
                extra["variants"] = variants
                extra["variant_trials"] = args.variant_trials
            print(json.dumps(_line(scenario, "ours", failed, requests, **extra)), flush=True)
            if scenario.null and not scenario.breaches_policy:
                null_fails.setdefault(_policy(scenario.policy), []).extend(f for f, _ in ours)

            long = _ours(pool, scenario, scenario.long_policy, args.long_trials, seed,
                         args.workers)
            print(json.dumps(_line(
                scenario, "ours", float(np.mean([f for f, _ in long])),
                float(statistics.median(n for _, n in long)), trials=args.long_trials,
                policy=_policy(scenario.long_policy), **_target(scenario, long),
                **({"breaches_policy": True} if scenario.breaches_policy else {}))), flush=True)
            if scenario.null and not scenario.breaches_policy:
                null_fails.setdefault(_policy(scenario.long_policy), []).extend(
                    f for f, _ in long)

            kayenta = _kayenta(pool, scenario, HORIZON, args.baseline_trials, seed + 1,
                               args.workers)
            extra = {"trials": args.baseline_trials}
            if scenario.target and scenario.target[1] > HORIZON:
                power = float(np.mean(_kayenta(pool, scenario, scenario.target[1],
                                               args.baseline_trials, seed + 3, args.workers)))
                extra["power_at_target_requests"] = round(power, 4)
            if scenario.target and failed >= 0.95:
                # our power is >= 0.95: the horizon Kayenta needs for 0.95 is a lower bound
                # on what it needs to match us
                extra["requests_for_power_0.95"] = None
                for n in EQUAL_POWER_GRID:
                    power = float(np.mean(_kayenta(pool, scenario, n, args.equal_power_trials,
                                                   seed + n, args.workers)))
                    if power >= 0.95:
                        extra["requests_for_power_0.95"] = n
                        extra["power_at_that_horizon"] = round(power, 4)
                        break
                extra["equal_power_trials"] = args.equal_power_trials
                extra["ours_uses_fewer"] = requests < (extra["requests_for_power_0.95"]
                                                       or math.inf)
            print(json.dumps(_line(scenario, "kayenta_mwu", float(np.mean(kayenta)),
                                   float(HORIZON), **extra)), flush=True)
            if scenario.null and not scenario.breaches_policy:
                null_fails.setdefault("kayenta_mwu", []).extend(kayenta.tolist())

            flagger = flagger_trials(scenario, limits[scenario.shape], args.baseline_trials,
                                     seed + 2)
            print(json.dumps(_line(scenario, "flagger_threshold", float(np.mean(flagger)),
                                   float(HORIZON), trials=args.baseline_trials,
                                   p99_limit_ms=round(limits[scenario.shape], 1))), flush=True)
            if scenario.null and not scenario.breaches_policy:
                null_fails.setdefault("flagger_threshold", []).extend(flagger.tolist())
            print(f"{scenario.name}: {time.monotonic() - started:.0f}s", file=sys.stderr)
    for judge, fails in null_fails.items():
        ours = judge.startswith("max_requests=")  # our judge's runs are pooled per policy
        print(json.dumps({"bench": "judge", "scenario": "all_null_within_policy", "null": True,
                          "judge": "ours" if ours else judge, "policy": judge if ours else None,
                          "power": None,
                          "false_rollback": round(float(np.mean(fails)), 4),
                          "median_requests": None, "trials": len(fails)}), flush=True)
    print(f"total {time.monotonic() - started:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
