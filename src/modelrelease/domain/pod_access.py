"""How the pipeline reaches model pods: the way users' traffic does, or the API server's proxy.

Smoke tests, generated load, output agreement and live scraping go to the Service's
ClusterIP (and pod IPs) when those are reachable, as users' traffic is: from inside the
cluster, or from a host whose routing table sends the ClusterIP somewhere other than its
default route (a node, where kube-proxy translates it, or a VPN into the cluster). Only
then, because a ClusterIP sent down the default route would leave the machine for a
network that does not know it. Otherwise they go through the API server's service and
pod proxy, which needs nothing but a kubeconfig. Pure: the caller reads the routing
table (``/proc/net/route``) and the environment.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum

__all__ = ["AccessMode", "PodPath", "choose_path", "local_route"]


class AccessMode(StrEnum):
    """What the settings ask for (``MODELRELEASE_KUBE__POD_ACCESS``)."""

    AUTO = "auto"
    """ClusterIP when reachable (in the cluster, or routed off the default route), else proxy."""
    DIRECT = "direct"
    """Always the ClusterIP and pod IPs (the operator vouches that they are reachable)."""
    PROXY = "proxy"
    """Always the API server's proxy."""


class PodPath(StrEnum):
    """The path the checks took, as the report names it."""

    CLUSTER_IP = "the Service's ClusterIP and pod IPs"
    CLUSTER_DNS = "the Service's cluster DNS name and pod IPs"
    API_PROXY = "the API server's service and pod proxy"


def local_route(route_table: str, address: str) -> str | None:
    """The device of the most specific non-default route to ``address``, or None.

    ``route_table`` is ``/proc/net/route`` (addresses and masks as little-endian hex).
    None when only a default route (``0.0.0.0/0``) covers ``address``, or nothing does.
    """
    target = int(ipaddress.IPv4Address(address))
    best: tuple[int, str] | None = None
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8 or not int(fields[3], 16) & 0x1:  # RTF_UP
            continue
        destination, mask = (int.from_bytes(bytes.fromhex(f), "little")
                             for f in (fields[1], fields[7]))
        prefix = bin(mask).count("1")
        if prefix and target & mask == destination and (best is None or prefix > best[0]):
            best = (prefix, fields[0])
    return None if best is None else best[1]


def choose_path(mode: AccessMode, *, in_cluster: bool, route: str | None,
                cluster_ip: str | None) -> tuple[PodPath, str]:
    """The path to take and why, in words for the release's timeline.

    Args:
        mode: The setting.
        in_cluster: The pipeline runs in a pod (``KUBERNETES_SERVICE_HOST`` is set).
        route: The non-default route device to the ClusterIP (``local_route``), if any.
        cluster_ip: The Service's ClusterIP (None for a headless Service or none yet).
    """
    if mode is AccessMode.PROXY:
        return PodPath.API_PROXY, "MODELRELEASE_KUBE__POD_ACCESS=proxy"
    if cluster_ip is None:
        return PodPath.API_PROXY, "the Service has no ClusterIP"
    if mode is AccessMode.DIRECT:
        return PodPath.CLUSTER_IP, f"MODELRELEASE_KUBE__POD_ACCESS=direct ({cluster_ip})"
    if in_cluster:  # as the endpoint's own clients in the cluster call it
        return PodPath.CLUSTER_DNS, f"running in the cluster (the Service is {cluster_ip})"
    if route is not None:
        return PodPath.CLUSTER_IP, f"{cluster_ip} is routed to {route}, not the default route"
    return PodPath.API_PROXY, (f"{cluster_ip} is reachable only through the default route "
                               "(outside the cluster)")
