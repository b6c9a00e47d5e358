"""domain.cost: quantities and hourly cost against hand-computed figures."""

from __future__ import annotations

from decimal import Decimal

import pytest

from modelrelease.domain.cost import PriceTable, hourly_cost, quantity


@pytest.mark.parametrize(("text", "value"), [
    pytest.param("500m", Decimal("0.5"), id="millicores"),
    pytest.param("2", Decimal(2), id="cores"),
    pytest.param("512Mi", Decimal(512 * 2**20), id="mebibytes"),
    pytest.param("2Gi", Decimal(2 * 2**30), id="gibibytes"),
    pytest.param("1G", Decimal(10**9), id="gigabytes"),
])
def test_quantity(text: str, value: Decimal) -> None:
    assert quantity(text) == value


def test_cost_with_gpus_matches_hand_computation() -> None:
    prices = PriceTable(cpu_hour=0.04, gib_hour=0.005, accelerators_hour={"nvidia.com/gpu": 2.5})
    # per pod: 2 cores * 0.04 + 8 GiB * 0.005 + 1 GPU * 2.5 = 0.08 + 0.04 + 2.5 = 2.62
    assert hourly_cost("2", "8Gi", {"nvidia.com/gpu": 1}, 3, prices) == pytest.approx(7.86)
    assert hourly_cost("500m", "512Mi", {}, 1, prices) == pytest.approx(0.0225)
    assert hourly_cost("1", "1Gi", {"example.com/fpga": 1}, 1, prices) == pytest.approx(0.045)
