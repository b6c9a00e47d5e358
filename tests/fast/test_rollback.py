"""``modelrelease rollback`` on the in-memory fakes: ``release.rollback.rollback_with``.

Version 1 is seeded as primary (slot green) and version 2 released and promoted on top
(slot blue); a rollback switches back to version 1 without any analysis.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from modelrelease.domain.cost import PriceTable
from modelrelease.domain.manifests import Slot, Track
from modelrelease.domain.readiness import Readiness, RolloutState
from modelrelease.domain.rollback import status_after_rollback, targets
from modelrelease.domain.rollout import ReleaseOutcome
from modelrelease.errors import InvalidInput, KubeApiError, ReleaseInProgress
from modelrelease.release.rollback import RollbackResult, rollback_with
from modelrelease.settings import ReleaseConfig
from modelrelease.spec import ModelEndpoint, ReleasePhase
from tests.fakes import FakeCluster, image_of
from tests.fast.test_release_loop import World, condition, history, promoted, track

P, RB = ReleasePhase.PROMOTED, ReleasePhase.ROLLED_BACK


@pytest.fixture
def two(world: World) -> World:
    """Version 1 promoted, then version 2 promoted on top of it (now in slot blue)."""
    promoted(world)
    assert world.release("2").outcome is ReleaseOutcome.PROMOTED
    world.cluster.calls.clear()
    world.models.tagged.clear()
    world.evidence.analysed.clear()
    return world


def rollback(world: World, to: str | None = None, by: str = "ana@laptop") -> RollbackResult:
    return rollback_with(world.cluster, world.models, world.endpoint, to, by, ReleaseConfig(),
                         PriceTable(), world.lines.append)


def test_a_rollback_switches_back_to_the_last_verified_release(two: World) -> None:
    result = rollback(two)

    assert (result.rolled_back, result.version, result.warm) == ("2", "1", False)
    assert result.image == image_of("1").image
    assert two.cluster.changed() == ["deploy_canary green", "promote green",
                                     "remove_canary blue"]
    assert two.cluster.primary_slot is Slot.GREEN
    primary = two.cluster.deployment(Track.PRIMARY)
    assert primary is not None and primary.digest == image_of("1").digest
    assert two.cluster.deployment(Track.CANARY) is None
    status = two.status
    assert (status.phase, status.primary, status.canary) == (RB, track("1"), None)
    assert status.reason == result.reason and "by ana@laptop" in result.reason
    assert history(status) == [("1", P), ("2", P), ("2", RB)]
    assert two.models.tags("2")["modelrelease.status"] == "rolled_back"
    assert "rolled back to version 1 by ana@laptop" in two.models.tags("2")[
        "modelrelease.reason"]
    assert condition(status).status == "True"
    assert two.cluster.events[-1][0] == "RolledBack"
    assert two.cluster.holder is None
    assert "no analysis" in status.reason and not two.evidence.analysed  # nothing judged
    said = json.loads(result.summary())
    assert said["outcome"] == "rolled_back" and said["version"] == "1"
    assert said["rolled_back"] == "2" and said["image"] == image_of("1").image


def test_what_the_lock_holder_did_meanwhile_counts(two: World) -> None:
    def another_rollback_just_before() -> None:  # its record, as it left it
        status = two.status
        two.cluster.status = status_after_rollback(
            status, targets(status)[0], image=image_of("1").image, release_id="rb-0",
            by="bo@laptop", spec_hash=status.spec_hash or "", cost_per_hour=0.0,
            now=datetime.now(UTC))

    two.cluster.on_lock = another_rollback_just_before
    with pytest.raises(InvalidInput, match="no verified release to go back to"):
        rollback(two)  # version 1 is primary by then, version 2 rolled back
    assert two.cluster.changed() == []


def test_the_promotion_alias_moves_back(two: World) -> None:
    alias = two.endpoint.spec.promotion.alias
    assert alias, "the fast tier's endpoint has a promotion alias"
    assert two.models.aliases[alias] == "2"
    rollback(two)
    assert two.models.aliases[alias] == "1"


def test_warm_pods_of_the_target_are_switched_to_without_a_start(two: World) -> None:
    two.cluster.seed(Track.CANARY, image_of("1"), "1", release_id="r-1")
    two.cluster.calls.clear()
    result = rollback(two)
    assert result.warm is True
    assert two.cluster.changed() == ["promote green", "remove_canary blue"]


@pytest.mark.parametrize(("to", "refusal"), [
    pytest.param("2", "version 2 is already primary; valid targets: version 1 (", id="primary"),
    pytest.param("7", "version 7 is not a verified release of this endpoint", id="unknown"),
])
def test_a_bad_target_is_refused_with_the_valid_ones_and_nothing_changes(
        two: World, to: str, refusal: str) -> None:
    before = two.status
    with pytest.raises(InvalidInput, match="valid targets: version 1 ") as refused:
        rollback(two, to)
    assert refusal in str(refused.value)
    assert two.cluster.changed() == [] and two.status == before
    assert two.models.tagged == [] and two.cluster.holder is None


def test_a_release_in_flight_is_refused(two: World) -> None:
    two.cluster.status = two.status.model_copy(update={"phase": ReleasePhase.ANALYSING,
                                                       "canary": track("3")})
    with pytest.raises(InvalidInput, match="a release of version 3 is in flight"):
        rollback(two)
    assert two.cluster.changed() == []


def test_a_held_lock_is_refused(two: World) -> None:
    two.cluster.held_by_other = "r-9-3"
    with pytest.raises(ReleaseInProgress, match="another release holds its lock"):
        rollback(two)
    assert two.cluster.changed() == [] and two.status.phase is P


def test_a_target_that_does_not_start_switches_nothing(two: World) -> None:
    two.cluster.canary_health = Readiness(RolloutState.FAILED, "ImagePullBackOff")
    before = two.status
    with pytest.raises(KubeApiError, match=r"version 1 did not become ready: .*ImagePullBackOff"
                                           r".*nothing switched, version 2 keeps serving"):
        rollback(two)
    assert two.cluster.primary_slot is Slot.BLUE
    assert two.cluster.changed()[-1] == "remove_canary green"
    assert two.status == before and two.cluster.holder is None


def test_mlflow_down_leaves_the_tags_pending_not_the_rollback(two: World) -> None:
    two.models.down = True
    result = rollback(two)
    assert result.version == "1" and two.cluster.primary_slot is Slot.GREEN
    assert condition(two.status).status == "False"
    assert two.models.tagged == []
    two.models.down = False
    two.release("1")  # the next release applies the pending tags first
    assert two.models.tags("2")["modelrelease.status"] == "rolled_back"


def test_without_tags_a_rollback_only_moves_the_alias_back(endpoint: ModelEndpoint) -> None:
    untagged = endpoint.model_copy(update={"spec": endpoint.spec.model_copy(update={
        "promotion": endpoint.spec.promotion.model_copy(update={"tags": False})})})
    world = World(untagged, FakeCluster(untagged))
    promoted(world)
    assert world.release("2").outcome is ReleaseOutcome.PROMOTED
    world.models.tagged.clear()
    rollback(world)
    assert [(t.version, t.tags, t.alias) for t in world.models.tagged] == [
        ("1", {}, "production")]
