"""``GatewayRouter``: the ``gateway-api`` ``TrafficRouter``, exact weights on an HTTPRoute.

For clusters that run a Gateway (``traffic.router: gateway-api``). The release owns
``HTTPRoute E`` (``domain.gateway``) and moves its weights exactly as the steps ask (1%,
5%, 10%...), while ``Service E`` keeps selecting the primary's slot alone: users who reach
the endpoint through the Gateway are split by the route, the rest get the primary. The
canary runs the replicas for its share of the primary's traffic. After each step's hold
the route is read back: weights someone else changed stop the release with that reason.
A first release, a promotion and a rollback leave the route on the primary alone.

:func:`check_gateway` refuses, before anything changes, a cluster without the Gateway
API's CRDs, a Gateway that does not exist, and a route of that name that a release did not
make.
"""

from __future__ import annotations

from modelrelease.adapters.kube import KubeCluster
from modelrelease.domain.gateway import (
    API_VERSION,
    GATEWAY_CRDS,
    GROUP,
    KIND,
    drift,
    owned_by_us,
    render_route,
    route_name,
)
from modelrelease.errors import InvalidInput, KubeApiError
from modelrelease.release.ports import Cluster, Routes
from modelrelease.release.replica_router import RouterBase
from modelrelease.spec import ModelEndpoint, Router

GATEWAY_NEEDS: tuple[tuple[str, str, str], ...] = tuple(
    (verb, GROUP, "httproutes") for verb in ("get", "create", "patch"))
"""What a release with the ``gateway-api`` router does beside ``NEEDS``, in its namespace."""


class GatewayRouter(RouterBase):
    """Exact weights on the endpoint's HTTPRoute (a ``ports.Traffic``)."""

    router = Router.GATEWAY_API

    def __init__(self, cluster: Cluster, routes: Routes, endpoint: ModelEndpoint, image: str,
                 version: str, release_id: str, first_release: bool) -> None:
        gateway = endpoint.spec.traffic.gateway
        if endpoint.spec.traffic.router is not Router.GATEWAY_API or gateway is None:
            raise InvalidInput(f"route {endpoint.namespace}/{endpoint.name} through a "
                               "Gateway: its traffic.router is not gateway-api")
        super().__init__(cluster, endpoint, image, version, release_id, first_release)
        self.routes = routes
        self.name = (f"gateway-api (HTTPRoute {endpoint.namespace}/{route_name(endpoint)} on "
                     f"Gateway {gateway.namespace or endpoint.namespace}/{gateway.name})")
        self._set: int | None = None
        """The canary weight this router last put on the route (None: not yet)."""

    def set_weight(self, weight: int, shadow: int = 0) -> tuple[int, float]:
        """Scale the canary for its share, then put exactly ``weight`` percent on the route.

        A shadow step's route sends the canary nothing (the primary's pods copy to it); a
        first release's leaves the route on the primary alone: the canary is the primary
        to be, and reached through ``E-canary`` until it is promoted.
        """
        replicas, effective = self.canary_replicas_for(weight, shadow)
        self.cluster.scale_canary(self.image, self.version, self.release_id, replicas)
        self.cluster.route_live(canary=False)
        self._route(0 if shadow or self.first_release else weight)
        return replicas, effective

    def live_through_service(self) -> bool:
        """No: users reach the canary through the route, ``Service E`` is the primary's."""
        return False

    def changed_by_others(self) -> str | None:
        """Why the route is no longer what this router set, or None."""
        if self._set is None:
            return None
        return drift(self.endpoint, self.routes.read_route(), self._set)

    def primary_alone(self) -> None:
        """The route sends every unpinned request to ``E-primary``."""
        self._route(0)

    def _route(self, weight: int) -> None:
        self.routes.apply_route(render_route(self.endpoint, weight, self.release_id))
        self._set = weight


def check_gateway(cluster: KubeCluster, endpoint: ModelEndpoint) -> None:
    """Refuse a ``gateway-api`` endpoint the cluster cannot route, before anything changes.

    Raises:
        InvalidInput: the Gateway API's CRDs are not installed, the Gateway does not exist,
            or ``HTTPRoute E`` exists and no release made it; each with the fix.
        KubeApiError: the identity may not read the Gateway or write the route (403).
    """
    traffic = endpoint.spec.traffic
    if traffic.router is not Router.GATEWAY_API or traffic.gateway is None:
        return
    where = f"release endpoint {endpoint.namespace}/{endpoint.name}"
    missing = [kind for kind in ("Gateway", KIND) if not cluster.serves_kind(API_VERSION, kind)]
    if missing:
        raise InvalidInput(
            f"{where}: traffic.router is gateway-api but the cluster does not serve "
            f"{' or '.join(missing)} ({API_VERSION}): install the Gateway API's standard "
            f"CRDs ({', '.join(GATEWAY_CRDS)}; kubectl apply -f standard-install.yaml from "
            "https://github.com/kubernetes-sigs/gateway-api/releases) and a Gateway, or use "
            "router: replica-ratio")
    gateway = traffic.gateway
    namespace = gateway.namespace or endpoint.namespace
    if cluster.get(API_VERSION, "Gateway", gateway.name, namespace) is None:
        raise InvalidInput(
            f"{where}: traffic.gateway {namespace}/{gateway.name} does not exist: fix "
            "traffic.gateway (kubectl get gateways -A lists the Gateways)")
    denied = cluster.denied(endpoint.namespace, GATEWAY_NEEDS)
    if denied:
        raise KubeApiError(
            f"{where}: forbidden: User \"{cluster.identity()}\" may not {', '.join(denied)} "
            f"in namespace {endpoint.namespace}; grant it in the pipeline's Role "
            "(deployments/kubernetes/rbac.yaml)", status=403)
    existing = cluster.get(API_VERSION, KIND, route_name(endpoint), endpoint.namespace)
    if existing is not None and not owned_by_us(existing):
        raise InvalidInput(
            f"{where}: HTTPRoute {endpoint.namespace}/{route_name(endpoint)} exists and no "
            "release made it (no app.kubernetes.io/managed-by: modelrelease label): a "
            "release owns the route named after its endpoint, so rename or delete that one")
