"""What an endpoint's replicas cost: requests x replicas x a price table. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

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
