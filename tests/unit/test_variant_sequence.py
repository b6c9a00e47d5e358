"""The load generator's slice mix: which variant each request sends (largest deficit)."""

from __future__ import annotations

import pytest

from modelrelease.adapters.loadgen import variant_sequence


@pytest.mark.parametrize(
    ("weights", "count", "expected"),
    [
        pytest.param([1.0], 3, [0, 0, 0], id="one"),
        pytest.param([1.0, 1.0], 4, [0, 1, 0, 1], id="even"),
        pytest.param([1.0, 3.0], 8, [1, 0, 1, 1, 1, 0, 1, 1], id="one-to-three"),
    ],
)
def test_variant_sequence(weights: list[float], count: int, expected: list[int]) -> None:
    assert variant_sequence(weights, count) == expected


@pytest.mark.parametrize("weights", [[1.0, 2.0, 7.0], [0.05, 0.95], [3.0, 3.0, 3.0, 1.0]])
def test_every_prefix_is_within_one_request_of_the_mix(weights: list[float]) -> None:
    sequence = variant_sequence(weights, 500)
    total = sum(weights)
    for n in range(1, 501):
        for v, weight in enumerate(weights):
            assert abs(sequence[:n].count(v) - weight / total * n) < 1.0 + 1e-9
