"""``run_rollback``: the primary back to an earlier verified release, under the lock.

No analysis and no build (``domain.rollback`` chooses the target and writes the record):
the target's image, pinned by the digest its promotion verified, goes into the free slot,
or is found there with its pods warm, and once it is ready the Services switch to it as a
promotion switches them (``Cluster.promote``). Then the replaced primary's slot goes, the
MLflow tags say so, and the endpoint's promotion alias moves back. If the target does not
become ready, nothing switches: its slot is removed and the primary keeps serving.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from modelrelease.adapters.kube import KubeCluster
from modelrelease.adapters.mlflow_registry import MlflowRegistry
from modelrelease.adapters.prefect_secrets import with_secret_blocks
from modelrelease.costs import prices as price_table
from modelrelease.domain import rollout
from modelrelease.domain.cost import PriceTable, endpoint_cost
from modelrelease.domain.manifests import Track
from modelrelease.domain.model import ModelVersion
from modelrelease.domain.notifications import Notice, Notification
from modelrelease.domain.plan import rollout_policy
from modelrelease.domain.readiness import RolloutState
from modelrelease.domain.rollback import (
    RollbackTarget,
    rollback_refusal,
    rollback_target,
    status_after_rollback,
)
from modelrelease.domain.status_record import with_condition
from modelrelease.errors import InvalidInput, KubeApiError
from modelrelease.release.kube_endpoint import KubeEndpoint, require_namespace
from modelrelease.release.lock import holding_lock
from modelrelease.release.models import ReleaseModels
from modelrelease.release.ports import Cluster, ModelRegistry
from modelrelease.release.steps import tag
from modelrelease.settings import PipelineSettings, ReleaseConfig
from modelrelease.spec import Condition, ModelEndpoint, ModelEndpointStatus, spec_hash

Say = Callable[[str], None]


@dataclass(frozen=True)
class RollbackResult:
    """How a rollback ended: the primary serves ``version`` (``image``) again."""

    endpoint: str
    rolled_back: str
    """The version that was primary before."""
    version: str
    image: str
    release_id: str
    warm: bool
    """Whether the target's pods were already running (nothing to start)."""
    seconds: float
    """From the start to the switch (the Services select the target's pods)."""
    reason: str

    @property
    def notification(self) -> Notification:
        """What the rollback tells people: which version was rolled back, by whom."""
        return Notification(Notice.ROLLED_BACK, self.endpoint, self.rolled_back, self.reason,
                            self.release_id)

    def as_dict(self) -> dict[str, object]:
        """Every field, with ``outcome: rolled_back`` (the flow's return value)."""
        return {"outcome": "rolled_back", **asdict(self)}

    def summary(self) -> str:
        """One JSON line (the CLI's last line of output)."""
        return json.dumps(self.as_dict())


def run_rollback(endpoint: ModelEndpoint, to: str | None, by: str,
                 settings: PipelineSettings | None = None, *, say: Say = print
                 ) -> RollbackResult:
    """Roll ``endpoint`` back to version ``to`` (default: its last verified release).

    Raises:
        InvalidInput: no primary, a release in flight, or no such verified version (the
            message lists the valid ones); missing namespace. Nothing changed.
        ReleaseInProgress: another release or rollback holds the endpoint's lock.
        KubeApiError: the target did not become ready; the primary keeps serving.
    """
    settings = with_secret_blocks(settings or PipelineSettings())
    cluster = KubeCluster(settings.kube)
    try:
        require_namespace(cluster, endpoint)
        models = ReleaseModels(MlflowRegistry(settings.mlflow), settings.build.cache_dir)
        return rollback_with(KubeEndpoint(endpoint, cluster), models, endpoint, to, by,
                             settings.release, price_table(settings), say)
    finally:
        cluster.close()


def rollback_with(cluster: Cluster, models: ModelRegistry, endpoint: ModelEndpoint,
                  to: str | None, by: str, options: ReleaseConfig, prices: PriceTable,
                  say: Say) -> RollbackResult:
    """``run_rollback`` through the interfaces (the fast tier calls it with fakes)."""
    where = f"{endpoint.namespace}/{endpoint.name}"
    began = time.monotonic()
    _target(cluster, to, where)  # refuse before taking the lock
    release_id = uuid.uuid4().hex[:12]
    with holding_lock(cluster, f"{release_id}-rollback", options, f"roll back {where}"):
        status, target = _target(cluster, to, where)  # again: what the lock holder left
        assert status.primary is not None  # rollback_refusal
        previous = status.primary
        image = f"{endpoint.spec.image.repository}@{target.digest}"
        replicas = max(cluster.primary_replicas(), endpoint.spec.autoscaling.min_replicas)
        # a bake keeps the previous version's Deployment, at no replicas once it is over
        warm = cluster.serves(Track.CANARY, target.digest) and cluster.canary_replicas() > 0
        say(f"{where}: rolling back version {previous.version} to {target.describe()}, "
            f"{'its pods warm' if warm else 'starting its pods'}, as {by}")
        if not warm:  # a kept Deployment of that version is scaled up, not replaced
            cluster.deploy_canary(image, target.version, release_id, replicas)
        timeout = rollout_policy(endpoint, first_release=False).deploy_timeout.total_seconds()
        readiness = cluster.promote(image, target.version, release_id, replicas, timeout)
        if readiness.state is RolloutState.FAILED:
            cluster.remove_canary()
            raise KubeApiError(f"roll back {where}: version {target.version} did not become "
                               f"ready: {readiness.reason}; nothing switched, version "
                               f"{previous.version} keeps serving")
        switched = time.monotonic() - began
        cluster.remove_canary()  # the replaced primary's slot
        reason = (f"version {previous.version} rolled back to version {target.version} by "
                  f"{by}")
        tagged = _tag(models, endpoint, previous.version, target.version, release_id, reason,
                      say, where)
        cost = endpoint_cost(endpoint.spec.resources, replicas, prices)
        after = status_after_rollback(status, target, image=image, release_id=release_id,
                                      by=by, spec_hash=spec_hash(endpoint),
                                      cost_per_hour=cost, now=datetime.now(UTC))
        cluster.write_status(after.model_copy(update={
            "conditions": with_condition(after.conditions, tagged)}))
        cluster.event("RolledBack", f"{reason}: version {target.version} ({image}) is primary")
        say(f"{where}: version {target.version} is primary again ({switched:.1f}s to the "
            "switch)")
        return RollbackResult(where, previous.version, target.version, image, release_id, warm,
                              round(switched, 2), after.reason or reason)


def _tag(models: ModelRegistry, endpoint: ModelEndpoint, rolled_back: str, target: str,
         release_id: str, reason: str, say: Say, where: str) -> Condition:
    """Tag the rolled-back version, and move the promotion alias back to ``target``.

    MLflow being down does not fail a rollback that has switched: the condition says the
    tags are pending (the next release applies the rolled-back version's).
    """
    name = endpoint.spec.model.name
    done = [tag(models, ModelVersion.known(name, rolled_back), say, where, {
        "modelrelease.status": rollout.ReleaseOutcome.ROLLED_BACK,
        "modelrelease.reason": reason, "modelrelease.release_id": release_id},
        record=endpoint.spec.promotion.tags)]
    if endpoint.spec.promotion.alias and done[0].status == "True":
        done.append(tag(models, ModelVersion.known(name, target), say, where,
                        {"modelrelease.status": rollout.ReleaseOutcome.PROMOTED},
                        alias=endpoint.spec.promotion.alias,
                        record=endpoint.spec.promotion.tags))
    return next((c for c in done if c.status != "True"), done[0])


def _target(cluster: Cluster, to: str | None, where: str
            ) -> tuple[ModelEndpointStatus, RollbackTarget]:
    """The status now and the target; refusals as ``InvalidInput``."""
    status = cluster.read_status()
    refused = rollback_refusal(status, where)
    if refused is not None:
        raise InvalidInput(refused)
    assert status is not None
    chosen = rollback_target(status, to, where)
    if isinstance(chosen, str):
        raise InvalidInput(chosen)
    return status, chosen
