"""``ReplicaRatioRouter``: the default ``TrafficRouter``, weight as the canary's replica share.

``Service E`` selects both slots, so live traffic follows ready replicas; setting a weight
scales the canary beside the primary (``domain.traffic`` computes the split).
"""

from __future__ import annotations

from modelrelease.domain.traffic import shadow_replicas, split_by_replicas
from modelrelease.release.ports import Cluster
from modelrelease.spec import ModelEndpoint


class ReplicaRatioRouter:
    """The canary's share of ready replicas is its weight (a ``ports.Traffic``)."""

    name = "replica ratio"

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
        no users (0%).
        """
        if self.first_release:
            return self.endpoint.spec.autoscaling.min_replicas, 100.0
        limit = self.endpoint.spec.autoscaling.max_replicas
        if shadow:
            return shadow_replicas(self.cluster.primary_replicas(), shadow,
                                   max_canary=limit), 0.0
        split = split_by_replicas(self.cluster.primary_replicas(), weight, max_canary=limit)
        return split.canary, split.effective

    def set_weight(self, weight: int, shadow: int = 0) -> tuple[int, float]:
        """Scale the canary for ``weight`` percent: its replicas and the percent it gets.

        A shadow step takes it out of ``Service E`` (after scaling); a weighted step puts
        it back in (once scaled).
        """
        replicas, effective = self.canary_replicas_for(weight, shadow)
        self.cluster.scale_canary(self.image, self.version, self.release_id, replicas)
        self.cluster.route_live(canary=not shadow)
        return replicas, effective
