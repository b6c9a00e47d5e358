"""domain.cost: quantities and hourly cost against hand-computed figures."""

from __future__ import annotations

from decimal import Decimal

import pytest

from modelrelease.domain.cost import (
    PriceTable,
    endpoint_cost,
    gpu_usage,
    gpu_utilisation,
    hourly_cost,
    quantity,
)
from modelrelease.spec.endpoint import Resources


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


# A pod's /metrics with NVIDIA's DCGM exporter gauges (percent), as recorded from dcgm-exporter.
DCGM = """\
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-5c1b",device="nvidia0",modelName="NVIDIA A10G"} 35
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-9e02",device="nvidia1",modelName="NVIDIA A10G"} 85
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-5c1b",device="nvidia0",modelName="NVIDIA A10G"} 8123
"""
# The serving pods' own gauge (a ratio), exported where NVML loads.
OURS = """\
# TYPE modelrelease_gpu_utilization gauge
modelrelease_gpu_utilization{gpu="0"} 0.5
modelrelease_requests_in_flight 0.0
"""
NONE = 'modelrelease_requests_total{path="/invocations",status="200"} 12.0\n'


@pytest.mark.parametrize(("text", "found"), [
    pytest.param(DCGM, [0.35, 0.85], id="dcgm-percent"),
    pytest.param(OURS, [0.5], id="ours-ratio"),
    pytest.param('modelrelease_gpu_utilization{gpu="0"} 1.7', [1.0], id="clamped"),
    pytest.param(NONE, None, id="no-gauge"),
    pytest.param("<html>403</html>", None, id="not-metrics"),
])
def test_gpu_utilisation(text: str, found: list[float] | None) -> None:
    assert gpu_utilisation(text) == (None if found is None else pytest.approx(found))


@pytest.mark.parametrize(("allocated", "scrapes", "used", "line"), [
    pytest.param(3, [DCGM, OURS], 1.7, "3 GPU(s) allocated, 1.70 used (57%)", id="all-report"),
    pytest.param(2, [OURS, NONE], 0.5, "2 GPU(s) allocated, 0.50 used (25%), 1 of 2 pods "
                 "reporting", id="partial"),
    pytest.param(1, [NONE], None, "1 GPU(s) allocated, no utilisation metrics", id="none"),
    pytest.param(1, [], None, "1 GPU(s) allocated, no utilisation metrics", id="no-pods"),
    pytest.param(0, [OURS], 0.5, "0 GPU(s) allocated, 0.50 used (0%)", id="nothing-allocated"),
])
def test_gpu_usage(allocated: int, scrapes: list[str], used: float | None, line: str) -> None:
    usage = gpu_usage(allocated, scrapes)
    assert usage.used == (None if used is None else pytest.approx(used))
    assert usage.describe() == line


def test_an_endpoints_cost_is_its_resources_times_its_replicas() -> None:
    prices = PriceTable(cpu_hour=1.0, gib_hour=0.5, accelerators_hour={"nvidia.com/gpu": 2.0})
    resources = Resources(cpu="2", memory="8Gi", accelerators={"nvidia.com/gpu": 1})
    assert endpoint_cost(resources, 3, prices) == pytest.approx(3 * (2 + 4 + 2))
    assert endpoint_cost(resources, 0, prices) == 0
