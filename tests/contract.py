"""What every ``ports.Cluster`` must do, written once: for the fake and for the real one.

Each ``cluster_contract_*`` function takes a fresh endpoint's cluster (nothing deployed,
no status, the ModelEndpoint resource not yet applied) and two images pinned by digest,
and uses only the methods of ``release.ports.Cluster``: no fake's attribute, no
Kubernetes call. ``tests/fast/test_fakes_contract.py`` runs them against ``FakeCluster``;
run against ``KubeEndpoint`` on the local stack (the images pushed to its registry, one
endpoint per function), they show the fake has not drifted from the real adapter.

``CLUSTER_CONTRACT`` lists them, for a test to parametrize over.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from modelrelease.domain.manifests import Track
from modelrelease.domain.readiness import RolloutState
from modelrelease.release.ports import Cluster, Image
from modelrelease.spec import (
    Condition,
    HistoryEntry,
    ModelEndpointStatus,
    ReleasePhase,
    TrackStatus,
)

TIMEOUT = 180.0
"""Seconds a real cluster gets to start a slot's pods."""
REPLICAS = 1
"""Replicas per slot: the least a real node must hold twice (both slots run at promotion)."""
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

ClusterContract = Callable[[Cluster, Image, Image], None]


def _release(cluster: Cluster, image: Image, version: str, release_id: str) -> None:
    """Deploy ``image`` as the canary, wait for it, and promote it."""
    cluster.deploy_canary(image.image, version, release_id, REPLICAS)
    assert cluster.wait_ready(Track.CANARY, TIMEOUT) is None
    readiness = cluster.promote(image.image, version, release_id, REPLICAS, TIMEOUT)
    assert readiness.state is RolloutState.READY, readiness.reason


def cluster_contract_fresh_endpoint_has_no_tracks(cluster: Cluster, a: Image, b: Image) -> None:
    """Nothing deployed: no primary, no replicas, neither track serves, neither is created."""
    assert not cluster.has_primary()
    assert cluster.primary_replicas() == 0
    for track in Track:
        assert not cluster.serves(track, a.digest)
        readiness = cluster.health(track)
        assert readiness.state is RolloutState.PROGRESSING
        assert "not created yet" in readiness.reason


def cluster_contract_canary_becomes_ready(cluster: Cluster, a: Image, b: Image) -> None:
    """A deployed canary gets ready, serves its image, and is not the primary."""
    cluster.ensure_record()
    cluster.deploy_canary(a.image, "1", "contract-1", REPLICAS)
    assert cluster.wait_ready(Track.CANARY, TIMEOUT) is None
    assert cluster.health(Track.CANARY).state is RolloutState.READY
    assert cluster.serves(Track.CANARY, a.digest, same_spec=True)
    assert not cluster.serves(Track.CANARY, b.digest)
    assert not cluster.has_primary()
    assert not cluster.serves(Track.PRIMARY, a.digest)


def cluster_contract_first_promotion_makes_a_primary(cluster: Cluster, a: Image,
                                                     b: Image) -> None:
    """Promoting a first canary leaves a ready primary serving it, and no canary."""
    cluster.ensure_record()
    _release(cluster, a, "1", "contract-1")
    assert cluster.has_primary()
    assert cluster.primary_replicas() >= REPLICAS  # an autoscaler may add replicas
    assert cluster.serves(Track.PRIMARY, a.digest, same_spec=True)
    assert cluster.health(Track.PRIMARY).state is RolloutState.READY
    assert not cluster.serves(Track.CANARY, a.digest)


def cluster_contract_promote_switches_slots(cluster: Cluster, a: Image, b: Image) -> None:
    """Promoting a second canary switches the tracks: the old primary is now the canary."""
    cluster.ensure_record()
    _release(cluster, a, "1", "contract-1")
    cluster.deploy_canary(b.image, "2", "contract-2", REPLICAS)
    assert cluster.serves(Track.PRIMARY, a.digest)  # the canary changes nothing routed
    assert cluster.serves(Track.CANARY, b.digest)
    assert cluster.wait_ready(Track.CANARY, TIMEOUT) is None
    readiness = cluster.promote(b.image, "2", "contract-2", REPLICAS, TIMEOUT)
    assert readiness.state is RolloutState.READY, readiness.reason
    assert cluster.serves(Track.PRIMARY, b.digest, same_spec=True)
    assert cluster.serves(Track.CANARY, a.digest)
    assert not cluster.serves(Track.PRIMARY, a.digest)


def cluster_contract_promotion_after_its_switch_is_done(cluster: Cluster, a: Image,
                                                        b: Image) -> None:
    """Promoting again what the primary already serves (a resumed promotion) changes nothing."""
    cluster.ensure_record()
    _release(cluster, a, "1", "contract-1")
    _release(cluster, b, "2", "contract-2")
    readiness = cluster.promote(b.image, "2", "contract-2-resumed", REPLICAS, TIMEOUT)
    assert readiness.state is RolloutState.READY, readiness.reason
    assert cluster.serves(Track.PRIMARY, b.digest, same_spec=True)
    assert cluster.serves(Track.CANARY, a.digest)  # the old primary's slot is still there


def cluster_contract_remove_canary_leaves_the_primary(cluster: Cluster, a: Image,
                                                      b: Image) -> None:
    """Removing the canary (and waiting it out) leaves no canary and the primary as it was."""
    cluster.ensure_record()
    _release(cluster, a, "1", "contract-1")
    cluster.deploy_canary(b.image, "2", "contract-2", REPLICAS)
    assert cluster.wait_ready(Track.CANARY, TIMEOUT) is None
    cluster.remove_canary()
    assert not cluster.serves(Track.CANARY, b.digest)  # at once: its pods may still drain
    cluster.wait_gone(Track.CANARY)
    assert not cluster.serves(Track.CANARY, b.digest)
    assert "not created yet" in cluster.health(Track.CANARY).reason
    assert cluster.serves(Track.PRIMARY, a.digest, same_spec=True)
    assert cluster.health(Track.PRIMARY).state is RolloutState.READY


def cluster_contract_previous_primary_can_be_promoted_back(cluster: Cluster, a: Image,
                                                           b: Image) -> None:
    """After a switch, promoting the previous image back restores it (the restore path)."""
    cluster.ensure_record()
    _release(cluster, a, "1", "contract-1")
    _release(cluster, b, "2", "contract-2")
    readiness = cluster.promote(a.image, "1", "contract-2", REPLICAS, TIMEOUT)
    assert readiness.state is RolloutState.READY, readiness.reason
    cluster.remove_canary()
    cluster.wait_gone(Track.CANARY)
    assert cluster.serves(Track.PRIMARY, a.digest, same_spec=True)
    assert not cluster.serves(Track.CANARY, b.digest)


def _status() -> ModelEndpointStatus:
    return ModelEndpointStatus(
        phase=ReleasePhase.ANALYSING, release_id="contract-2", reason="step 1/2 weight 0→10",
        step=0, weight=10,
        primary=TrackStatus(version="1", digest="sha256:" + "a" * 64,
                            image="127.0.0.1:5000/ml/iris@sha256:" + "a" * 64),
        canary=TrackStatus(version="2", digest="sha256:" + "b" * 64,
                           image="127.0.0.1:5000/ml/iris@sha256:" + "b" * 64),
        history=[HistoryEntry(release_id="contract-1", version="1",
                              phase=ReleasePhase.PROMOTED, digest="sha256:" + "a" * 64,
                              reason="promoted", finished_at=WHEN, spec_hash="sha256:x")],
        conditions=[Condition(type="MlflowTagged", status="True", reason="Tagged",
                              message="version 1 tagged promoted", last_transition_time=WHEN)],
        spec_hash="sha256:x", cost_per_hour=1.25)


def cluster_contract_a_stepped_down_first_primary_goes(cluster: Cluster, a: Image,
                                                       b: Image) -> None:
    """A first release's primary stepped down and removed leaves the endpoint empty."""
    cluster.ensure_record()
    _release(cluster, a, "1", "contract-1")
    cluster.step_down()
    assert not cluster.serves(Track.PRIMARY, a.digest)
    assert cluster.serves(Track.CANARY, a.digest)
    cluster.remove_canary()
    cluster.wait_gone(Track.CANARY)
    assert not cluster.has_primary()
    assert not cluster.serves(Track.CANARY, a.digest)


def cluster_contract_status_round_trips(cluster: Cluster, a: Image, b: Image) -> None:
    """What is written is read back, field for field; a cleared field stays cleared."""
    cluster.ensure_record()
    written = _status()
    cluster.write_status(written)
    assert cluster.read_status() == written
    cleared = written.model_copy(update={"canary": None, "step": None,
                                         "phase": ReleasePhase.ROLLED_BACK})
    cluster.write_status(cleared)
    assert cluster.read_status() == cleared


def cluster_contract_write_conditions_keeps_the_rest(cluster: Cluster, a: Image,
                                                     b: Image) -> None:
    """Writing the conditions replaces them alone: the rest of the status stays."""
    cluster.ensure_record()
    written = _status()
    cluster.write_status(written)
    pending = Condition(type="MlflowTagged", status="False", reason="MlflowUnavailable",
                        message="tags of version 2 not applied", last_transition_time=WHEN)
    cluster.write_conditions([pending])
    assert cluster.read_status() == written.model_copy(update={"conditions": [pending]})


def cluster_contract_lock_is_exclusive(cluster: Cluster, a: Image, b: Image) -> None:
    """A second holder does not get the lock while it is held, and gets it once it is not."""
    cluster.ensure_record()
    with cluster.lock("contract-holder-1", 30, 0.0) as first:
        assert first
        with cluster.lock("contract-holder-2", 30, 0.0) as second:
            assert not second
    with cluster.lock("contract-holder-3", 30, 0.0) as third:
        assert third



def cluster_contract_an_abort_names_its_release(cluster: Cluster, a: Image, b: Image) -> None:
    """An ask to stop reaches the release it names, and no other; a newer ask replaces it."""
    cluster.ensure_record()
    assert cluster.abort_requested("release-1") is None
    cluster.request_abort("release-1", "ana@laptop")
    assert cluster.abort_requested("release-1") == "ana@laptop"
    assert cluster.abort_requested("release-2") is None
    cluster.request_abort("release-2", "bo@ci")
    assert cluster.abort_requested("release-2") == "bo@ci"
    assert cluster.abort_requested("release-1") is None


CLUSTER_CONTRACT: tuple[ClusterContract, ...] = (
    cluster_contract_fresh_endpoint_has_no_tracks,
    cluster_contract_canary_becomes_ready,
    cluster_contract_first_promotion_makes_a_primary,
    cluster_contract_promote_switches_slots,
    cluster_contract_promotion_after_its_switch_is_done,
    cluster_contract_remove_canary_leaves_the_primary,
    cluster_contract_previous_primary_can_be_promoted_back,
    cluster_contract_a_stepped_down_first_primary_goes,
    cluster_contract_status_round_trips,
    cluster_contract_write_conditions_keeps_the_rest,
    cluster_contract_lock_is_exclusive,
    cluster_contract_an_abort_names_its_release,
)
"""Every case of the contract, in order."""
