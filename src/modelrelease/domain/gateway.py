"""The endpoint's ``HTTPRoute`` for the ``gateway-api`` router, and what it says now.

With ``traffic.router: gateway-api`` a release owns one ``HTTPRoute E`` (Gateway API,
``gateway.networking.k8s.io/v1``) in the endpoint's namespace, attached to the Gateway the
spec names. Its rules, in order of precedence:

- ``x-modelrelease-track: primary`` goes to ``Service E-primary`` and ``canary`` to
  ``E-canary``: smoke checks, generated load or a person pin one track through the gateway;
- every other request is split by exact weights between ``E-primary`` and ``E-canary``
  (``100 - w`` and ``w``), or goes to ``E-primary`` alone (a first release, after a
  promotion or a rollback, and during shadow steps).

``E-primary`` and ``E-canary`` follow the slots (promotion switches their selectors), so the
route never names a slot. The API server defaults what the route leaves out (a rule's path
match, a backend's group, kind and weight); :func:`weights_of` reads the split back from
what the server holds, so someone else's change to it is seen (:func:`drift`). Pure: dicts
in, dicts out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from modelrelease.domain.manifests import (
    ANNOTATION_RELEASE_ID,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    MANAGED_BY,
    SERVICE_PORT,
    Track,
    service_name,
)
from modelrelease.errors import InvalidInput
from modelrelease.spec import ModelEndpoint, Router

__all__ = ["API_VERSION", "GATEWAY_CRDS", "GROUP", "KIND", "TRACK_HEADER", "Split", "drift",
           "owned_by_us", "render_route", "route_name", "weights_of"]

GROUP: Final = "gateway.networking.k8s.io"
API_VERSION: Final = f"{GROUP}/v1"
KIND: Final = "HTTPRoute"
TRACK_HEADER: Final = "x-modelrelease-track"
"""The request header that pins a request to one track through the gateway."""
GATEWAY_CRDS: Final = (f"gateways.{GROUP}", f"httproutes.{GROUP}")
"""The CustomResourceDefinitions the router needs (the standard channel's)."""


@dataclass(frozen=True)
class Split:
    """The route's split of unpinned requests: the backends' weights as the server has them."""

    primary: int
    canary: int
    others: tuple[str, ...] = ()
    """Backends that are neither track's Service (someone added them)."""

    @property
    def canary_percent(self) -> float:
        """The canary's share in percent (0 with no weight at all)."""
        total = self.primary + self.canary
        return 100.0 * self.canary / total if total else 0.0

    def describe(self) -> str:
        """``primary 90, canary 10`` (and any other backend)."""
        text = f"primary {self.primary}, canary {self.canary}"
        return text + "".join(f", {name}" for name in self.others)


def route_name(endpoint: ModelEndpoint) -> str:
    """``E``: the route has the endpoint's name, as its Service does."""
    return endpoint.name


def _gateway(endpoint: ModelEndpoint) -> tuple[str, str, str | None]:
    """The spec's Gateway (name, namespace) and hostname; refuses another router's spec."""
    traffic = endpoint.spec.traffic
    if traffic.router is not Router.GATEWAY_API or traffic.gateway is None:
        raise InvalidInput(f"render HTTPRoute of {endpoint.namespace}/{endpoint.name}: its "
                           f"traffic.router is {traffic.router.value}, not gateway-api")
    gateway = traffic.gateway
    return gateway.name, gateway.namespace or endpoint.namespace, traffic.hostname


def _backend(endpoint: ModelEndpoint, track: Track, weight: int | None = None
             ) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": service_name(endpoint, track), "port": SERVICE_PORT}
    if weight is not None:
        ref["weight"] = weight
    return ref


def render_route(endpoint: ModelEndpoint, canary_weight: int, release_id: str
                 ) -> dict[str, Any]:
    """``HTTPRoute E`` with ``canary_weight`` percent of unpinned requests on the canary.

    0 routes them all to the primary (and leaves the canary out of the split); 1..100 sets
    ``E-primary`` to ``100 - w`` and ``E-canary`` to ``w``, exactly.

    Raises:
        InvalidInput: ``canary_weight`` is not 0..100, or the endpoint's router is not
            ``gateway-api``.
    """
    if not 0 <= canary_weight <= 100:
        raise InvalidInput(f"render HTTPRoute of {endpoint.namespace}/{endpoint.name}: the "
                           f"canary's weight must be 0..100 percent, got {canary_weight}")
    gateway, namespace, hostname = _gateway(endpoint)
    name = route_name(endpoint)
    pinned = [{"matches": [{"headers": [{"type": "Exact", "name": TRACK_HEADER,
                                         "value": track.value}]}],
               "backendRefs": [_backend(endpoint, track)]}
              for track in (Track.PRIMARY, Track.CANARY)]
    split = ([_backend(endpoint, Track.PRIMARY, 100)] if canary_weight == 0 else
             [_backend(endpoint, Track.PRIMARY, 100 - canary_weight),
              _backend(endpoint, Track.CANARY, canary_weight)])
    spec: dict[str, Any] = {
        "parentRefs": [{"group": GROUP, "kind": "Gateway", "name": gateway,
                        "namespace": namespace}],
        "rules": [*pinned, {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                            "backendRefs": split}],
    }
    if hostname is not None:
        spec["hostnames"] = [hostname]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": endpoint.namespace,
                     "labels": {LABEL_NAME: endpoint.name, LABEL_INSTANCE: name,
                                LABEL_MANAGED_BY: MANAGED_BY},
                     "annotations": {ANNOTATION_RELEASE_ID: release_id}},
        "spec": spec,
    }


def owned_by_us(route: Mapping[str, Any]) -> bool:
    """Whether a route found in the cluster is one a release made (its managed-by label)."""
    labels = (route.get("metadata") or {}).get("labels") or {}
    return labels.get(LABEL_MANAGED_BY) == MANAGED_BY


def _pins(rule: Mapping[str, Any]) -> bool:
    """Whether a rule matches on the track header (a pinned track, not the split)."""
    return any(header.get("name", "").lower() == TRACK_HEADER
               for match in rule.get("matches") or ()
               for header in match.get("headers") or ())


def _is_service(ref: Mapping[str, Any]) -> bool:
    return ref.get("group", "") in ("", "core") and ref.get("kind", "Service") == "Service"


def weights_of(endpoint: ModelEndpoint, route: Mapping[str, Any]) -> Split:
    """The split of unpinned requests in ``route`` as the API server holds it.

    A backend without a weight weighs 1 (the API's default). Backends of the rules that do
    not match on the track header are summed by Service; any other backend is named in
    ``others``.
    """
    names = {service_name(endpoint, Track.PRIMARY): "primary",
             service_name(endpoint, Track.CANARY): "canary"}
    weights = {"primary": 0, "canary": 0}
    others: list[str] = []
    for rule in (route.get("spec") or {}).get("rules") or ():
        if _pins(rule):
            continue
        for ref in rule.get("backendRefs") or ():
            track = names.get(ref.get("name", "")) if _is_service(ref) else None
            weight = int(ref.get("weight", 1))
            if track is None:
                others.append(f"{ref.get('kind', 'Service')} {ref.get('name')} ({weight})")
            else:
                weights[track] += weight
    return Split(weights["primary"], weights["canary"], tuple(others))


def drift(endpoint: ModelEndpoint, route: Mapping[str, Any] | None, canary_weight: int
          ) -> str | None:
    """Why ``route`` is not the split a release set (``canary_weight``), or None if it is.

    The route missing, another router's backends added, or weights that give the canary
    another share: someone else changed the route during the release.
    """
    where = f"HTTPRoute {endpoint.namespace}/{route_name(endpoint)}"
    if route is None:
        return f"{where} is gone: someone deleted it during the release"
    split = weights_of(endpoint, route)
    expected = f"primary {100 - canary_weight}, canary {canary_weight}"
    if split.others:
        return (f"{where}: someone else changed its weights during the release "
                f"({split.describe()}; the release set {expected})")
    if abs(split.canary_percent - canary_weight) > 1e-9 or not split.primary + split.canary:
        return (f"{where}: someone else changed its weights during the release "
                f"({split.describe()}, {split.canary_percent:.4g}% to the canary; the "
                f"release set {expected})")
    return None
