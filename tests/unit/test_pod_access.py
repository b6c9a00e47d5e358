"""domain.pod_access: which path the checks take to the pods, from the routing table."""

from __future__ import annotations

import pytest

from modelrelease.domain.pod_access import AccessMode, PodPath, choose_path, local_route

# /proc/net/route as this machine had it with a node up: default via eth0, the Service
# CIDR 10.96.0.0/16 and a pod /24 10.245.1.0/24 on the node's bridge, a /24 on eth0.
TABLE = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
knbr1\t0000600A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
knbr1\t0001F50A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
vpn0\t00AA600A\t00000000\t0000\t0\t0\t0\t00FFFFFF\t0\t0\t0
short
"""


@pytest.mark.parametrize(("address", "device"), [
    pytest.param("10.96.12.7", "knbr1", id="service-cidr-on-the-bridge"),
    pytest.param("10.245.1.9", "knbr1", id="pod-cidr"),
    pytest.param("192.0.2.77", "eth0", id="link-route"),
    pytest.param("10.97.0.1", None, id="default-route-only"),
    pytest.param("10.96.170.1", "knbr1", id="a-down-route-is-skipped"),
])
def test_local_route_is_the_most_specific_non_default_route(address: str,
                                                            device: str | None) -> None:
    assert local_route(TABLE, address) == device


def test_no_table_means_no_local_route() -> None:
    assert local_route("", "10.96.0.1") is None


@pytest.mark.parametrize(("mode", "in_cluster", "route", "ip", "path", "words"), [
    pytest.param(AccessMode.PROXY, True, "knbr1", "10.96.0.5", PodPath.API_PROXY,
                 "POD_ACCESS=proxy", id="proxy-always"),
    pytest.param(AccessMode.AUTO, True, None, None, PodPath.API_PROXY, "no ClusterIP",
                 id="headless-service"),
    pytest.param(AccessMode.DIRECT, False, None, "10.96.0.5", PodPath.CLUSTER_IP,
                 "POD_ACCESS=direct (10.96.0.5)", id="direct-trusts-the-operator"),
    pytest.param(AccessMode.AUTO, True, None, "10.96.0.5", PodPath.CLUSTER_DNS,
                 "running in the cluster (the Service is 10.96.0.5)", id="in-cluster"),
    pytest.param(AccessMode.DIRECT, True, None, "10.96.0.5", PodPath.CLUSTER_IP,
                 "POD_ACCESS=direct (10.96.0.5)", id="direct-in-cluster-is-the-ip"),
    pytest.param(AccessMode.AUTO, False, "knbr1", "10.96.0.5", PodPath.CLUSTER_IP,
                 "10.96.0.5 is routed to knbr1, not the default route", id="on-a-node"),
    pytest.param(AccessMode.AUTO, False, None, "10.96.0.5", PodPath.API_PROXY,
                 "only through the default route", id="outside-the-cluster"),
])
def test_choose_path(mode: AccessMode, in_cluster: bool, route: str | None, ip: str | None,
                     path: PodPath, words: str) -> None:
    chosen, reason = choose_path(mode, in_cluster=in_cluster, route=route, cluster_ip=ip)
    assert chosen is path
    assert words in reason
