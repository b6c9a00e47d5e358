"""What an endpoint's replicas cost: requests x replicas x a price table. Pure.

Also GPUs allocated versus used, where the pods export a utilisation gauge: NVIDIA DCGM's
``DCGM_FI_DEV_GPU_UTIL`` (percent) or the serving pods' own ``modelrelease_gpu_utilization``
(a ratio, exported only where NVML is present), read from the pods or from Prometheus.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from modelrelease.domain.exposition import Sample, parse

if TYPE_CHECKING:
    from modelrelease.spec.endpoint import Resources

_SUFFIX: dict[str, int | Decimal] = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9,
    "T": 10**12, "m": Decimal("0.001")}


def quantity(text: str) -> Decimal:
    """A Kubernetes quantity as a number (``500m`` -> 0.5, ``2Gi`` -> 2147483648)."""
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if text.endswith(suffix):
            return Decimal(text[: -len(suffix)]) * Decimal(_SUFFIX[suffix])
    return Decimal(text)


@dataclass(frozen=True)
class PriceTable:
    """Prices per hour: one CPU core, one GiB of memory, one unit of each accelerator."""

    cpu_hour: float = 0.0316
    gib_hour: float = 0.0042
    accelerators_hour: Mapping[str, float] = field(
        default_factory=lambda: {"nvidia.com/gpu": 2.48})


def hourly_cost(cpu: str, memory: str, accelerators: Mapping[str, int], replicas: int,
                prices: PriceTable) -> float:
    """Cost per hour of ``replicas`` pods requesting ``cpu``, ``memory`` and accelerators."""
    per_pod = (float(quantity(cpu)) * prices.cpu_hour
               + float(quantity(memory) / Decimal(2**30)) * prices.gib_hour
               + sum(count * prices.accelerators_hour.get(name, 0.0)
                     for name, count in accelerators.items()))
    return round(per_pod * replicas, 6)


def endpoint_cost(resources: Resources, replicas: int, prices: PriceTable) -> float:
    """Cost per hour of ``replicas`` pods of an endpoint's ``spec.resources``."""
    return hourly_cost(resources.cpu, resources.memory, dict(resources.accelerators), replicas,
                       prices)


GPU_GAUGES: Mapping[str, float] = {"DCGM_FI_DEV_GPU_UTIL": 0.01,
                                   "modelrelease_gpu_utilization": 1.0}
"""Utilisation gauges, each with the factor that makes it a ratio (0..1) per GPU."""


def gpu_utilisation(text: str) -> list[float] | None:
    """Each GPU's utilisation (0..1) in one pod's ``/metrics``; None when it reports none.

    An answer that is not the text format counts as reporting none.
    """
    try:
        samples = parse(text)
    except ValueError:
        return None
    return utilisation_of(samples)


def utilisation_of(samples: Iterable[Sample]) -> list[float] | None:
    """Each GPU's utilisation (0..1) among one pod's samples; None when there is none."""
    found = [min(1.0, max(0.0, s.value * GPU_GAUGES[s.name]))
             for s in samples if s.name in GPU_GAUGES]
    return found or None


@dataclass(frozen=True)
class GpuUsage:
    """GPUs an endpoint's pods hold, and how busy the reporting ones are."""

    allocated: int
    used: float | None  # busy GPU-equivalents at the scrape; None: no utilisation metrics
    pods: int = 0
    reporting: int = 0

    def describe(self) -> str:
        """One line for ``modelrelease cost``."""
        if self.used is None:
            return f"{self.allocated} GPU(s) allocated, no utilisation metrics"
        share = self.used / self.allocated if self.allocated else 0.0
        partial = ("" if self.reporting == self.pods
                   else f", {self.reporting} of {self.pods} pods reporting")
        return (f"{self.allocated} GPU(s) allocated, {self.used:.2f} used "
                f"({share:.0%}){partial}")


def gpu_usage(allocated: int, scrapes: Sequence[str]) -> GpuUsage:
    """Allocated GPUs against the utilisation the pods' ``/metrics`` answers report."""
    return usage_of(allocated, [gpu_utilisation(text) for text in scrapes])


def usage_of(allocated: int, per_pod: Sequence[list[float] | None]) -> GpuUsage:
    """Allocated GPUs against each pod's GPUs' utilisation (None: the pod reports none)."""
    reported = [found for found in per_pod if found is not None]
    used = round(sum(sum(found) for found in reported), 4) if reported else None
    return GpuUsage(allocated, used, len(per_pod), len(reported))
