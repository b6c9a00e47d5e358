"""The judge per slice: which slices are tested, their verdicts, and error control across them."""

from __future__ import annotations

import random

import pytest

from modelrelease.domain import analysis
from modelrelease.domain.analysis import (
    AnalysisPolicy,
    ArmSamples,
    CheckStatus,
    Metric,
    Outcome,
    Samples,
)
from modelrelease.domain.slices import SliceCounts, plan_slices, slice_check

POLICY = AnalysisPolicy(max_requests=1000, max_error_rate=0.05, max_slices=10,
                        min_slice_requests=50)


def _arm(mix: dict[str, int], seed: int, *, slow: dict[str, float] | None = None,
         errors: dict[str, float] | None = None, sigma: float = 0.3) -> ArmSamples:
    """Lognormal latencies (median 40 ms) per slice value; ``slow`` multiplies a slice's
    latencies, ``errors`` fails that share of its requests (every n-th one)."""
    rng = random.Random(seed)
    latency: list[float] = []
    ok: list[bool] = []
    slices: list[str] = []
    for value, n in mix.items():
        every = round(1 / errors[value]) if errors and value in errors else 0
        for i in range(n):
            latency.append(40.0 * rng.lognormvariate(0.0, sigma) * (slow or {}).get(value, 1.0))
            ok.append(not (every and i % every == 0))
            slices.append(value)
    return ArmSamples(tuple(latency), tuple(ok), tuple(slices))


def _window(mix: dict[str, int], **canary: dict[str, float]) -> Samples:
    return Samples(_arm(mix, 1, **canary), _arm(mix, 2))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- samples

def test_slice_values_must_match_the_requests() -> None:
    with pytest.raises(ValueError, match="2 slice values but 1 requests"):
        ArmSamples((10.0,), (True,), ("a", "b"))


def test_sliced_and_unsliced_samples_add_up_and_split() -> None:
    sliced = ArmSamples((1.0, 2.0), (True, False), ("a", "b"))
    plain = ArmSamples((3.0,), (True,))
    both = plain + sliced
    assert both.slices == ("", "a", "b")
    assert (plain + plain).slices == ()
    assert plain.slice_values() == ("",)
    assert both.only("b") == ArmSamples((2.0,), (False,), ("b",))
    assert both.only("zz").requests == 0


# ------------------------------------------------------------------------------- policy

def test_slices_take_one_share_of_alpha_when_planned() -> None:
    plain = AnalysisPolicy(alpha=0.01)
    sliced = AnalysisPolicy(alpha=0.01, max_slices=10)
    assert Metric.SLICES not in plain.checks
    assert sliced.checks[-1] is Metric.SLICES
    assert sliced.share(Metric.SLICES) == pytest.approx(0.01 / 4)
    assert sliced.share(Metric.ERROR_RATE) == pytest.approx(0.01 / 4)
    assert plain.share(Metric.ERROR_RATE) == pytest.approx(0.01 / 3)


@pytest.mark.parametrize("fields", [{"max_slices": -1}, {"max_slices": 101},
                                    {"min_slice_requests": 1}])
def test_policy_rejects_bad_slice_settings(fields: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        AnalysisPolicy(**fields)  # type: ignore[arg-type]


# -------------------------------------------------------------------------- which slices

@pytest.mark.parametrize(
    ("canary", "primary", "policy", "expected"),
    [
        pytest.param({"a": 60, "b": 60}, {"a": 60, "b": 60}, POLICY,
                     SliceCounts(("a", "b"), (), (), ()), id="both-tested"),
        pytest.param({"a": 100, "b": 20}, {"a": 100, "b": 20}, POLICY,
                     SliceCounts(("a",), ("b",), (), ()), id="one-filling"),
        pytest.param({"a": 495, "b": 5}, {"a": 495, "b": 5}, POLICY,
                     SliceCounts(("a",), (), ("b",), ()), id="one-too-small-ever"),
        pytest.param({"a": 60, "b": 40}, {"a": 40, "b": 60}, POLICY,
                     SliceCounts((), ("a", "b"), (), ()), id="each-short-in-one-arm"),
        pytest.param({"a": 90, "b": 80, "c": 70}, {"a": 90, "b": 80, "c": 70},
                     POLICY.model_copy(update={"max_slices": 2}),
                     SliceCounts(("a", "b"), (), (), ("c",)), id="capped-most-frequent"),
        pytest.param({"": 100}, {"": 100}, POLICY, SliceCounts((), (), (), ()),
                     id="no-values"),
    ],
)
def test_plan_slices(canary: dict[str, int], primary: dict[str, int], policy: AnalysisPolicy,
                     expected: SliceCounts) -> None:
    window = Samples(_arm(canary, 1), _arm(primary, 2))
    assert plan_slices(window, policy) == expected


# ------------------------------------------------------------------------------ verdicts

def test_a_slow_slice_fails_and_is_named() -> None:
    window = _window({"de": 100, "en": 450, "fr": 450}, slow={"de": 1.5})
    check = slice_check(window, POLICY.level(5, Metric.SLICES), POLICY)
    assert check.status is CheckStatus.FAIL
    assert check.reason.startswith("slice 'de' (100 requests per arm): latency regression")
    assert "'en'" not in check.reason.split("(tested")[0]
    assert "tested: en, fr, de" in check.reason
    statuses = {row.value: row.status for row in check.slices}
    assert statuses["de"] == "failed" and statuses["en"] != "failed"
    (de,) = [row for row in check.slices if row.value == "de"]
    assert de.canary.requests == de.primary.requests == 100
    assert de.canary.p50_ms is not None and de.primary.p50_ms is not None
    assert de.canary.p50_ms > 1.3 * de.primary.p50_ms


def test_the_table_lists_every_slice_with_what_became_of_it() -> None:
    policy = POLICY.model_copy(update={"max_slices": 3})
    window = _window({"a": 300, "b": 30, "c": 8, "d": 5})
    check = slice_check(window, policy.level(5, Metric.SLICES), policy)
    assert [(row.value, row.status) for row in check.slices] == [
        ("a", "within limits"), ("b", "filling"), ("c", "too small"), ("d", "not judged")]


def test_a_slice_with_errors_fails_on_the_error_rate() -> None:
    window = _window({"a": 100, "b": 900}, errors={"a": 0.2})
    check = slice_check(window, POLICY.level(5, Metric.SLICES), POLICY)
    assert check.status is CheckStatus.FAIL
    assert "slice 'a' (100 requests per arm): error rate: canary 20.00% (20/100)" in check.reason


def test_identical_slices_pass_once_each_is_clearly_within_limits() -> None:
    mix = {"a": 500, "b": 500}
    same = _arm(mix, 7)
    faster = ArmSamples(tuple(v / 1.3 for v in same.latency_ms), same.ok, same.slices)
    check = slice_check(Samples(faster, same), POLICY.level(5, Metric.SLICES), POLICY)
    assert check.status is CheckStatus.PASS, check.reason
    assert check.reason == "slices: every tested slice within limits (tested: a, b)"


@pytest.mark.parametrize(
    ("mix", "reason"),
    [
        pytest.param({"a": 500, "b": 40}, "(tested: a; filling: b)", id="filling"),
        pytest.param({"": 300}, "slices: none to test yet (tested: none)", id="no-values"),
        pytest.param({"a": 100, "b": 100}, "'a' latency regression", id="not-yet-clear"),
    ],
)
def test_slices_hold_until_every_slice_is_tested_and_clear(mix: dict[str, int],
                                                           reason: str) -> None:
    window = _window(mix)
    check = slice_check(window, POLICY.level(5, Metric.SLICES), POLICY)
    assert check.status is CheckStatus.HOLD
    assert reason in check.reason


def test_the_judge_fails_a_slice_regression_the_whole_traffic_hides() -> None:
    """One slice of 10% is 50% slower: the whole-traffic checks see nothing; the slices do."""
    window = _window({f"s{i}": 100 for i in range(10)}, slow={"s3": 1.5})
    plain = analysis.evaluate(window, POLICY.model_copy(update={"max_slices": 0}))
    sliced = analysis.evaluate(window, POLICY)
    assert plain.outcome is not Outcome.FAIL
    assert sliced.outcome is Outcome.FAIL
    assert any(reason.startswith("slice 's3'") for reason in sliced.reasons), sliced.reasons


def test_identical_arms_in_ten_slices_rarely_fail() -> None:
    """Identical arms, ten slices, 60 windows: the slices' share bounds false rollbacks."""
    failed = 0
    for seed in range(60):
        mix = {f"s{i}": 100 for i in range(10)}
        window = Samples(_arm(mix, 1000 + seed, sigma=0.5), _arm(mix, 5000 + seed, sigma=0.5))
        check = slice_check(window, POLICY.level(1, Metric.SLICES), POLICY)
        failed += check.status is CheckStatus.FAIL
    assert failed == 0
