"""``ReplicaRatioRouter``: the default ``TrafficRouter``, weight as the canary's replica share.

``Service E`` selects both slots, so live traffic follows ready replicas; setting a weight
scales the canary beside the primary (``domain.traffic`` computes the split).
``RouterBase`` is what every router shares (the release's canary, sized for the router);
``release.gateway_router.GatewayRouter`` is the other one.
"""

from __future__ import annotations

from modelrelease.domain.traffic import canary_size
from modelrelease.release.ports import Cluster
from modelrelease.spec import ModelEndpoint, Router


class RouterBase:
    """What every ``ports.Traffic`` knows of the release: its canary, and how to size it.

    A subclass says which ``router`` it is (``domain.traffic.canary_size`` sizes the
    canary for it) and how it moves the traffic.
    """

    router: Router

    def __init__(self, cluster: Cluster, endpoint: ModelEndpoint, image: str, version: str,
                 release_id: str, first_release: bool) -> None:
        self.cluster = cluster
        self.endpoint = endpoint
        self.image = image
        self.version = version
        self.release_id = release_id
        self.first_release = first_release

    def canary_replicas_for(self, weight: int, shadow: int = 0) -> tuple[int, float]:
        """Canary replicas for ``weight`` beside the primary, and the weight they give.

        A first release has no primary: the canary runs ``minReplicas`` and takes it all.
        A shadow step's canary gets the primary's capacity for its share of copies, and
        no users (0%); a weighted step's, what the router gives (``canary_size``).
        """
        scaling = self.endpoint.spec.autoscaling
        return canary_size(self.router, self.cluster.primary_replicas(), weight, shadow,
                           first_release=self.first_release,
                           min_replicas=scaling.min_replicas, max_canary=scaling.max_replicas)


class ReplicaRatioRouter(RouterBase):
    """The canary's share of ready replicas is its weight (a ``ports.Traffic``)."""

    name = "replica ratio"
    router = Router.REPLICA_RATIO

    def set_weight(self, weight: int, shadow: int = 0) -> tuple[int, float]:
        """Scale the canary for ``weight`` percent: its replicas and the percent it gets.

        A shadow step takes it out of ``Service E`` (after scaling); a weighted step puts
        it back in (once scaled).
        """
        replicas, effective = self.canary_replicas_for(weight, shadow)
        self.cluster.scale_canary(self.image, self.version, self.release_id, replicas)
        self.cluster.route_live(canary=not shadow)
        return replicas, effective

    def live_through_service(self) -> bool:
        """Yes: ``Service E`` selects both slots, so users reach the canary's replicas."""
        return True

    def changed_by_others(self) -> str | None:
        """None: the split is the canary's replica count, which only the release sets."""
        return None

    def primary_alone(self) -> None:
        """``Service E`` selects the primary's slot alone."""
        self.cluster.route_live(canary=False)
