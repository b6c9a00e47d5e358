"""What each endpoint costs now: its spec's requests x its running replicas x the price table.

For endpoints holding GPUs, also how busy they are: a GPU utilisation gauge of each running
pod (``domain.cost.GPU_GAUGES``), read from the configured Prometheus (a DCGM exporter's
series) or else from each pod's ``/metrics`` through the API server's pod proxy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx

from modelrelease.adapters.kube import KubeCluster
from modelrelease.adapters.pod_metrics import running, scrape
from modelrelease.adapters.probe import ServiceProxy
from modelrelease.adapters.prometheus import Prometheus
from modelrelease.domain.cost import (
    GPU_GAUGES,
    GpuUsage,
    PriceTable,
    endpoint_cost,
    gpu_usage,
    usage_of,
    utilisation_of,
)
from modelrelease.domain.manifests import (
    Track,
    deployment_name,
    label_selector,
    service_name,
    slots_of,
)
from modelrelease.errors import PipelineError
from modelrelease.settings import PipelineSettings
from modelrelease.spec import ModelEndpoint, parse_resource

HOURS_PER_MONTH = 730
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EndpointCost:
    """One endpoint's replicas and their cost."""

    namespace: str
    name: str
    primary_replicas: int
    canary_replicas: int
    primary_per_hour: float
    canary_per_hour: float
    gpus: int
    gpu_usage: GpuUsage | None = None  # None: the endpoint holds no GPUs

    @property
    def per_hour(self) -> float:
        """Primary and canary together."""
        return round(self.primary_per_hour + self.canary_per_hour, 6)

    @property
    def per_month(self) -> float:
        """``per_hour`` over 730 hours."""
        return round(self.per_hour * HOURS_PER_MONTH, 2)


def prices(settings: PipelineSettings) -> PriceTable:
    """The configured price table (``MODELRELEASE_RELEASE__CPU_HOUR`` and friends)."""
    return PriceTable(settings.release.cpu_hour, settings.release.gib_hour,
                      {"nvidia.com/gpu": settings.release.gpu_hour})


def endpoint_costs(cluster: KubeCluster, settings: PipelineSettings,
                   namespace: str | None = None) -> list[EndpointCost]:
    """The cost of every ModelEndpoint (in ``namespace``, or in all namespaces)."""
    table = prices(settings)
    prometheus = Prometheus(settings.prometheus) if settings.prometheus.url else None
    out: list[EndpointCost] = []
    for item in cluster.list_objects("modelrelease.io/v1alpha1", "ModelEndpoint", namespace):
        endpoint = parse_resource(item)
        resources = endpoint.spec.resources
        accelerators = dict(resources.accelerators)
        replicas = {}
        slots = slots_of(cluster.get("v1", "Service", service_name(endpoint, Track.PRIMARY),
                                     endpoint.namespace))
        for track in (Track.PRIMARY, Track.CANARY):
            deployment = cluster.get("apps/v1", "Deployment",
                                     deployment_name(endpoint, slots.of(track)),
                                     endpoint.namespace) or {}
            replicas[track] = int((deployment.get("spec") or {}).get("replicas") or 0)
        out.append(EndpointCost(
            namespace=endpoint.namespace, name=endpoint.name,
            primary_replicas=replicas[Track.PRIMARY], canary_replicas=replicas[Track.CANARY],
            primary_per_hour=endpoint_cost(resources, replicas[Track.PRIMARY], table),
            canary_per_hour=endpoint_cost(resources, replicas[Track.CANARY], table),
            gpus=(gpus := sum(accelerators.values()) * (replicas[Track.PRIMARY]
                                                         + replicas[Track.CANARY])),
            gpu_usage=_gpu_usage(cluster, endpoint, gpus, prometheus) if gpus else None,
        ))
    return sorted(out, key=lambda c: (c.namespace, c.name))


def _gpu_usage(cluster: KubeCluster, endpoint: ModelEndpoint, gpus: int,
               prometheus: Prometheus | None) -> GpuUsage:
    """``gpus`` allocated against what the endpoint's running pods report using.

    From the configured Prometheus (where a DCGM exporter's series usually are), or from
    each pod's own ``/metrics``. Metrics that cannot be read mean "no utilisation metrics",
    never a failure of the cost report.
    """
    try:
        pods = running(cluster.pods(endpoint.namespace, label_selector(endpoint)))
    except PipelineError:
        return gpu_usage(gpus, [])
    if prometheus is not None:
        names = [str(p["metadata"]["name"]) for p in pods]
        try:
            found = prometheus.newest(sorted(GPU_GAUGES), endpoint.namespace, names)
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("GPU utilisation of %s/%s from %s: %s", endpoint.namespace,
                           endpoint.name, prometheus.via, exc)
            return gpu_usage(gpus, [])
        return usage_of(gpus, [utilisation_of(found.get(n, [])) for n in names])
    try:
        texts, _ = scrape(ServiceProxy(cluster._api.configuration), endpoint.namespace, pods)
    except PipelineError:  # e.g. no pods/proxy in that namespace: no metrics, not a failure
        return gpu_usage(gpus, [])
    return gpu_usage(gpus, list(texts.values()))
