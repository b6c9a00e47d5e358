"""Replica-ratio traffic split: counts and the weight they actually give."""

from __future__ import annotations

from fractions import Fraction

import pytest

from modelrelease.domain.traffic import (
    ReplicaSplit,
    canary_size,
    share_replicas,
    split_by_replicas,
)
from modelrelease.errors import InvalidInput
from modelrelease.spec import Router


@pytest.mark.parametrize(("primary", "weight", "cap", "canary", "effective"), [
    pytest.param(2, 10, None, 1, 33, id="issue-example"),
    pytest.param(1, 50, None, 1, 50, id="one-beside-one"),
    pytest.param(1, 10, None, 1, 50, id="small-weight-still-one"),
    pytest.param(4, 20, None, 1, 20, id="exact"),
    pytest.param(3, 50, None, 3, 50, id="half"),
    pytest.param(2, 60, None, 3, 60, id="exact-above-half"),
    pytest.param(1, 70, None, 2, 67, id="nearest-above"),
    pytest.param(10, 25, None, 3, 23, id="nearest-below"),
    pytest.param(1, 75, None, 3, 75, id="three-to-one"),
    pytest.param(1, 99, None, 99, 99, id="ninety-nine"),
    pytest.param(1, 90, 2, 2, 67, id="capped"),
    pytest.param(5, 0, None, 0, 0, id="zero-weight"),
    pytest.param(0, 0, None, 0, 0, id="nothing-runs"),
    pytest.param(0, 10, None, 1, 100, id="first-release"),
    pytest.param(2, 100, 4, 4, 67, id="hundred-capped"),
    pytest.param(3, 10, 1, 1, 25, id="cap-not-binding"),
])
def test_split_by_replicas(primary: int, weight: int, cap: int | None, canary: int,
                           effective: int) -> None:
    split = split_by_replicas(primary, weight, max_canary=cap)
    assert (split.primary, split.canary, split.requested) == (primary, canary, weight)
    assert split.effective_weight == effective


def test_ties_go_to_fewer_replicas() -> None:
    # primary 3, weight 45: 2 canaries give 40%, 3 give 50%, both 5 points off -> 2
    assert split_by_replicas(3, 45).canary == 2


def test_effective_share_and_description() -> None:
    split = split_by_replicas(2, 10)
    assert split.share == Fraction(1, 3)
    assert split.effective == pytest.approx(33.333, abs=1e-3)
    assert split.describe() == "canary 1 + primary 2 replicas: 33% of traffic (asked 10%)"
    assert ReplicaSplit(0, 0, 0).share == 0 and ReplicaSplit(0, 0, 0).effective == 0.0
    assert ReplicaSplit(1, 1, 50).effective_weight == 50
    assert ReplicaSplit(7, 1, 10).effective_weight == 13  # 12.5 rounds half up


@pytest.mark.parametrize(("primary", "weight", "cap", "words"), [
    pytest.param(-1, 10, None, "primary replicas must be 0 or more, got -1", id="negative-primary"),
    pytest.param(1, 101, None, "weight must be 0..100 percent, got 101", id="weight-over"),
    pytest.param(1, -1, None, "weight must be 0..100 percent, got -1", id="weight-under"),
    pytest.param(1, 10, 0, "max canary replicas must be 1 or more, got 0", id="cap-zero"),
    pytest.param(2, 100, None, "weight 100 cannot be reached by replica ratio", id="hundred"),
])
def test_split_refuses(primary: int, weight: int, cap: int | None, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        split_by_replicas(primary, weight, max_canary=cap)


@pytest.mark.parametrize(
    ("primary", "shadow", "cap", "expected"),
    [
        pytest.param(1, 100, None, 1, id="one-primary-all-copies"),
        pytest.param(4, 100, None, 4, id="as-many-as-serve-it"),
        pytest.param(4, 10, None, 1, id="a-tenth-at-least-one"),
        pytest.param(10, 25, None, 3, id="rounds-up"),
        pytest.param(0, 50, None, 1, id="no-primary-one"),
        pytest.param(8, 100, 3, 3, id="capped"),
    ],
)
def test_share_replicas(primary: int, shadow: int, cap: int | None, expected: int) -> None:
    assert share_replicas(primary, shadow, max_canary=cap) == expected


@pytest.mark.parametrize(("primary", "shadow", "message"), [
    pytest.param(-1, 50, "primary replicas must be 0 or more", id="negative"),
    pytest.param(1, 0, "its share of the primary's traffic must be 1..100 percent, got 0",
                 id="zero"),
    pytest.param(1, 101, "got 101", id="over"),
])
def test_share_replicas_refuses(primary: int, shadow: int, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        share_replicas(primary, shadow)


@pytest.mark.parametrize(("router", "primary", "weight", "shadow", "first", "expected"), [
    pytest.param(Router.REPLICA_RATIO, 2, 10, 0, False, (1, 100 / 3), id="replicas-nearest"),
    pytest.param(Router.GATEWAY_API, 2, 10, 0, False, (1, 10.0), id="route-exact"),
    pytest.param(Router.GATEWAY_API, 10, 25, 0, False, (3, 25.0), id="route-capacity"),
    pytest.param(Router.GATEWAY_API, 4, 100, 0, False, (4, 100.0), id="route-all"),
    pytest.param(Router.GATEWAY_API, 30, 50, 0, False, (5, 50.0), id="route-capped"),
    pytest.param(Router.GATEWAY_API, 4, 0, 100, False, (4, 0.0), id="shadow-route"),
    pytest.param(Router.REPLICA_RATIO, 4, 0, 50, False, (2, 0.0), id="shadow-replicas"),
    pytest.param(Router.GATEWAY_API, 0, 100, 0, True, (2, 100.0), id="first-release"),
    pytest.param(Router.REPLICA_RATIO, 0, 100, 0, True, (2, 100.0), id="first-replicas"),
])
def test_canary_size(router: Router, primary: int, weight: int, shadow: int, first: bool,
                     expected: tuple[int, float]) -> None:
    replicas, effective = canary_size(router, primary, weight, shadow, first_release=first,
                                      min_replicas=2, max_canary=5)
    assert (replicas, effective) == pytest.approx(expected)
