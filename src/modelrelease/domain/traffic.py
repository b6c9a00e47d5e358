"""How live traffic is split between the primary and the canary.

The default router needs nothing but Deployments: ``Service E`` selects the pods of both
tracks (``app.kubernetes.io/name=E``), so its endpoints are every *ready* pod of either
Deployment and each ready replica receives about the same share of requests. A canary weight
is therefore reached by choosing how many canary replicas run beside the primary's:
``canary / (primary + canary)``. Only some weights are reachable that way (with 2 primary
replicas: 33%, 50%, 60%, ...), so :func:`split_by_replicas` reports the *effective* weight,
and that is what a release records and reports.

Other routers (Gateway API ``HTTPRoute`` weights, a service mesh) reach any weight exactly;
they implement ``release.ports.Traffic``. This module is pure: numbers in, numbers out.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from modelrelease.errors import InvalidInput
from modelrelease.spec import Router

__all__ = ["ReplicaSplit", "canary_size", "share_replicas", "split_by_replicas"]


@dataclass(frozen=True)
class ReplicaSplit:
    """Replica counts for a requested canary weight, and the weight they actually give."""

    primary: int
    """Ready primary replicas the split assumes."""
    canary: int
    """Canary replicas to run."""
    requested: int
    """The weight asked for, in percent."""

    @property
    def share(self) -> Fraction:
        """The canary's exact share of traffic (0 when nothing runs)."""
        total = self.primary + self.canary
        return Fraction(self.canary, total) if total else Fraction(0)

    @property
    def effective(self) -> float:
        """The canary's share of traffic in percent, e.g. 33.33 for 1 canary beside 2."""
        return float(self.share * 100)

    @property
    def effective_weight(self) -> int:
        """:attr:`effective` rounded to a whole percent (halves round up)."""
        return int(self.share * 100 + Fraction(1, 2))

    def describe(self) -> str:
        """``canary 1 + primary 2 replicas: 33% of traffic (asked 10%)``."""
        return (f"canary {self.canary} + primary {self.primary} replicas: "
                f"{self.effective_weight}% of traffic (asked {self.requested}%)")


def split_by_replicas(
    primary_replicas: int, weight: int, *, max_canary: int | None = None
) -> ReplicaSplit:
    """Canary replicas whose share of ready replicas comes closest to ``weight`` percent.

    Any weight above 0 gets at least one canary replica; between two counts equally close to
    the weight the smaller (cheaper) one wins. ``max_canary`` caps the count (GPU capacity,
    cost); the effective weight then says what the cap allows. With no primary replicas (a
    first release) one canary replica takes all traffic.

    Examples: primary 2, weight 10 -> canary 1 (33%); primary 1, weight 50 -> canary 1 (50%);
    primary 4, weight 20 -> canary 1 (20%); any primary, weight 0 -> canary 0 (0%).

    Args:
        primary_replicas: Ready primary replicas (0 or more).
        weight: Requested canary weight in percent, 0..100.
        max_canary: Most canary replicas allowed (1 or more), or None for no cap.

    Raises:
        InvalidInput: A count or weight is out of range, or ``weight`` is 100 beside a
            serving primary with no cap (replicas alone never give the canary everything).
    """
    if primary_replicas < 0:
        raise InvalidInput(
            f"split traffic: primary replicas must be 0 or more, got {primary_replicas}")
    if not 0 <= weight <= 100:
        raise InvalidInput(f"split traffic: weight must be 0..100 percent, got {weight}")
    if max_canary is not None and max_canary < 1:
        raise InvalidInput(
            f"split traffic: max canary replicas must be 1 or more, got {max_canary}")
    if weight == 0:
        return ReplicaSplit(primary_replicas, 0, weight)
    if primary_replicas == 0:
        return ReplicaSplit(0, 1, weight)
    if weight == 100:
        if max_canary is None:
            raise InvalidInput(
                "split traffic: weight 100 cannot be reached by replica ratio while the primary "
                f"serves ({primary_replicas} replicas): promote instead, or give max_canary"
            )
        return ReplicaSplit(primary_replicas, max_canary, weight)
    target = Fraction(weight, 100)
    ideal = primary_replicas * target / (1 - target)  # c / (p + c) = w  <=>  c = p*w / (1-w)
    low = max(1, ideal.numerator // ideal.denominator)
    candidates = [low, low + 1]
    if max_canary is not None:
        candidates = [min(c, max_canary) for c in candidates]

    def error(count: int) -> Fraction:
        return abs(Fraction(count, primary_replicas + count) - target)

    best = min(candidates, key=lambda count: (error(count), count))
    return ReplicaSplit(primary_replicas, best, weight)


def share_replicas(primary_replicas: int, percent: int, *, max_canary: int | None = None
                   ) -> int:
    """Canary replicas with the primary's capacity for ``percent`` of its traffic.

    ``ceil(primary * percent / 100)``, at least 1, at most ``max_canary``: a shadow step's
    copies of all live traffic need as many replicas as serve it, copies of 10% a tenth of
    them; so does an exact weight that a gateway sends.

    Raises:
        InvalidInput: A count or share is out of range.
    """
    if primary_replicas < 0:
        raise InvalidInput(
            f"size the canary: primary replicas must be 0 or more, got {primary_replicas}")
    if not 1 <= percent <= 100:
        raise InvalidInput(f"size the canary: its share of the primary's traffic must be "
                           f"1..100 percent, got {percent}")
    wanted = max(1, -(-primary_replicas * percent // 100))
    return wanted if max_canary is None else max(1, min(wanted, max_canary))


def canary_size(router: Router, primary_replicas: int, weight: int, shadow: int = 0, *,
                first_release: bool, min_replicas: int, max_canary: int
                ) -> tuple[int, float]:
    """A step's canary replicas, and the percent of live traffic they get.

    A first release has no primary: ``min_replicas`` take it all. A shadow step's canary
    gets no users and the capacity for its copies (:func:`share_replicas`). A weighted
    step's: with ``replica-ratio``, the replicas whose share of ready replicas comes
    closest (:func:`split_by_replicas`, the share they really give); with ``gateway-api``,
    the capacity for exactly ``weight`` percent, which the route gives.
    """
    if first_release:
        return min_replicas, 100.0
    if shadow:
        return share_replicas(primary_replicas, shadow, max_canary=max_canary), 0.0
    if router is Router.GATEWAY_API:
        return share_replicas(primary_replicas, weight, max_canary=max_canary), float(weight)
    split = split_by_replicas(primary_replicas, weight, max_canary=max_canary)
    return split.canary, split.effective
