"""``watch_registry``: compare each endpoint's MLflow target with its primary; ask for releases.

The watcher is the only path for stage transitions (MLflow sends no webhook for them) and
the safety net when a webhook is lost. It starts nothing itself: it posts the same
``modelrelease.release.requested`` event the webhook bridge posts, with the same id for
the same (endpoint, version, spec), so both seeing one change start one release.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from modelrelease.adapters.kube import KubeCluster
from modelrelease.adapters.mlflow_registry import MlflowRegistry
from modelrelease.adapters.prefect_events import PrefectEvents
from modelrelease.domain.plan import model_uri
from modelrelease.domain.triggers import ReleaseTrigger, watch_decision
from modelrelease.errors import ModelNotFound
from modelrelease.release.kube_endpoint import endpoint_status
from modelrelease.settings import PipelineSettings
from modelrelease.spec import load_endpoints, spec_hash

Say = Callable[[str], None]


@dataclass(frozen=True)
class Watched:
    """What the watcher found for one endpoint."""

    endpoint: str
    target: str | None
    """The version MLflow selects now (None when it selects none)."""
    release: bool
    reason: str


def watch_registry(settings: PipelineSettings | None = None, *, say: Say = print,
                   events: PrefectEvents | None = None) -> list[Watched]:
    """Look at every endpoint file once; request a release for each one that is behind.

    An endpoint whose model selector resolves to nothing (no such alias yet, an empty
    stage) is reported and skipped; the others are still looked at.

    Raises:
        InvalidInput: The endpoints directory or a file in it is invalid.
        MlflowError: MLflow is unreachable (retriable).
        PrefectError: Prefect refused the events (retriable when it is a 5xx).
    """
    settings = settings or PipelineSettings()
    endpoints = load_endpoints(settings.release.endpoints_dir)
    models = MlflowRegistry(settings.mlflow)
    cluster = KubeCluster(settings.kube)
    found: list[Watched] = []
    triggers: list[ReleaseTrigger] = []
    try:
        for name, endpoint in endpoints.items():
            where = f"{endpoint.namespace}/{name}"
            uri = model_uri(endpoint)
            try:
                target = models.resolve(uri).version
            except ModelNotFound as exc:
                found.append(Watched(name, None, False, f"{uri} selects nothing: {exc}"))
                say(f"{where}: skipped, {uri} selects nothing ({exc})")
                continue
            digest = spec_hash(endpoint)
            decision = watch_decision(target, digest, endpoint_status(cluster, endpoint))
            found.append(Watched(name, target, decision.release, decision.reason))
            say(f"{where}: {uri} -> version {target}: "
                f"{'release' if decision.release else 'nothing to do'} ({decision.reason})")
            if decision.release:
                triggers.append(ReleaseTrigger(name, endpoint.namespace, target, digest,
                                               "watcher", decision.reason))
    finally:
        cluster.close()
    if triggers:
        client = events or PrefectEvents()
        try:
            client.request_releases(triggers)
        finally:
            if events is None:
                client.close()
    return found
