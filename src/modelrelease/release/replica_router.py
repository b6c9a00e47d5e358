"""``ReplicaRatioRouter``: the default ``TrafficRouter``, weight as the canary's replica share.

``Service E`` selects both slots, so live traffic follows ready replicas; setting a weight
scales the canary beside the primary (``domain.traffic`` computes the split).
"""

from __future__ import annotations

from modelrelease.domain.traffic import split_by_replicas
from modelrelease.release.ports import Cluster
from modelrelease.spec import ModelEndpoint


class ReplicaRatioRouter:
    """The canary's share of ready replicas is its weight (a ``ports.Traffic``)."""

    def __init__(self, cluster: Cluster, endpoint: ModelEndpoint, image: str, version: str,
                 release_id: str, first_release: bool) -> None:
        self.cluster = cluster
        self.endpoint = endpoint
        self.image = image
        self.version = version
        self.release_id = release_id
        self.first_release = first_release

    def canary_replicas_for(self, weight: int) -> tuple[int, float]:
        """Canary replicas for ``weight`` beside the primary, and the weight they give.

        A first release has no primary: the canary runs ``minReplicas`` and takes it all.
        """
        if self.first_release:
            return self.endpoint.spec.autoscaling.min_replicas, 100.0
        split = split_by_replicas(self.cluster.primary_replicas(), weight,
                                  max_canary=self.endpoint.spec.autoscaling.max_replicas)
        return split.canary, split.effective

    def set_weight(self, weight: int) -> tuple[int, float]:
        """Scale the canary for ``weight`` percent: its replicas and the percent it gets."""
        replicas, effective = self.canary_replicas_for(weight)
        self.cluster.scale_canary(self.image, self.version, self.release_id, replicas)
        return replicas, effective
