"""The bake after promotion in whole releases, on the fakes.

Endpoint ``ml/iris`` with ``canary.bake: {duration: 1m}`` (12 looks, 5 s apart; nothing
sleeps here). Version 1 is the primary in slot green; version 2's canary goes to blue and,
promoted, serves from there while version 1 waits warm in green. ``FakeEvidence.bake``
scripts what each look finds in the new primary's live traffic. The real side (a version
that slows down after its promotion, live traffic on the real node, no request lost) is
tests/e2e/test_bake.py. The last tests call the ``wait`` executor itself (really
sleeping, at most 1.7 s): between a bake's looks it must end on an abort.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from modelrelease.domain import live, rollout
from modelrelease.domain.cost import PriceTable
from modelrelease.domain.manifests import Slot, Track
from modelrelease.domain.notifications import Notice
from modelrelease.domain.rollout import Phase, ReleaseOutcome
from modelrelease.release import steps
from modelrelease.release.rollback import rollback_with
from modelrelease.settings import ReleaseConfig
from modelrelease.spec import ModelEndpoint, ReleasePhase, TrackStatus, parse_endpoint
from tests.fakes import FakeCluster, FakeEvidence, image_of
from tests.fast.test_release_loop import (
    FULL_RELEASE,
    World,
    history,
    in_flight,
    phases,
    promoted,
    track,
)
from tests.unit.test_spec import doc

BREACH = live.LiveEvidence(live.LiveOutcome.FAIL, "the new primary's live traffic (pod "
                           "metrics, 300 requests): live p99 above 200 ms: 40 of 300 slower")
THIN = live.LiveEvidence(live.LiveOutcome.THIN, "the new primary's live traffic (pod metrics, "
                         "12 requests): too thin to judge (fewer than 100)")
BAKED = [*FULL_RELEASE[:-1], *[Phase.BAKING] * 12, Phase.PROMOTED]
"""The phases of a baked release that passes (each look is a transition)."""


@pytest.fixture
def baked() -> ModelEndpoint:
    """``ml/iris`` with a one-minute bake."""
    return parse_endpoint(doc(**{"spec.canary.bake": {"duration": "1m"}}))


def world_of(endpoint: ModelEndpoint, *looks: live.LiveEvidence) -> World:
    world = World(endpoint, FakeCluster(endpoint), evidence=FakeEvidence(bake=looks))
    promoted(world)
    return world


def test_a_bake_that_sees_no_breach_promotes_and_keeps_the_previous_version(
        baked: ModelEndpoint) -> None:
    world = world_of(baked)
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.PROMOTED
    assert phases(result) == BAKED
    assert result.reason.startswith("bake passed: the new primary's live traffic")
    (window,) = world.evidence.windows
    assert window.track is Track.PRIMARY
    assert window.seen == [(200, 12)] * 12  # the checks' minRequests; alpha over 12 looks
    status = world.status
    assert (status.phase, status.primary, status.canary) == (ReleasePhase.PROMOTED,
                                                             track("2"), None)
    # version 1's Deployment stays in green, at no replicas: the rollback target
    kept = world.cluster.slots[Slot.GREEN]
    assert (kept.digest, kept.replicas) == (image_of("1").digest, 0)
    assert world.cluster.primary_slot is Slot.BLUE
    assert world.cluster.changed()[-2:] == ["promote blue", "scale_canary green"]
    assert "remove_canary green" not in world.cluster.changed()
    assert world.models.aliases == {"production": "2"}
    assert [n.notice for n in world.told][-1] is Notice.PROMOTED
    assert "kept for `modelrelease rollback`" in "\n".join(world.lines)
    names = world.executed.names
    assert names.count("start_bake") == 1 and names.count("bake_look") == 12


def test_while_baking_the_record_shows_the_new_primary_and_the_warm_previous(
        baked: ModelEndpoint) -> None:
    world = world_of(baked)
    seen: list[tuple[TrackStatus | None, TrackStatus | None, int, float | None]] = []

    def look() -> None:
        status = world.status
        seen.append((status.primary, status.canary, status.weight, status.cost_per_hour))

    world.executed.before["bake_look"] = look
    world.release("2")
    assert seen[0][:3] == (track("2"), track("1"), 0)
    # the warm previous version's replicas are paid for too, until the bake is over
    assert seen[0][3] is not None and world.status.cost_per_hour is not None
    assert seen[0][3] == 2 * world.status.cost_per_hour


@pytest.mark.parametrize(("looks", "at"), [
    pytest.param([BREACH], 1, id="first-look"),
    pytest.param([THIN, THIN, BREACH], 3, id="after-thin-looks"),
])
def test_a_breach_while_baking_rolls_back_to_the_warm_previous_version(
        baked: ModelEndpoint, looks: list[live.LiveEvidence], at: int) -> None:
    world = world_of(baked, *looks)
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.ROLLED_BACK
    assert phases(result) == [*FULL_RELEASE[:-1], *[Phase.BAKING] * at, Phase.ROLLING_BACK,
                              Phase.ROLLED_BACK]
    assert result.reason == f"rolled back: bake failed at look {at}: {BREACH.reason}"
    status = world.status
    assert (status.primary, status.canary) == (track("1"), None)
    assert history(status)[-1] == ("2", ReleasePhase.ROLLED_BACK)
    # version 1 is promoted back in green, where its pods still ran; blue goes
    assert world.cluster.primary_slot is Slot.GREEN
    assert set(world.cluster.slots) == {Slot.GREEN}
    assert world.cluster.slots[Slot.GREEN].digest == image_of("1").digest
    assert world.cluster.changed()[-2:] == ["promote green", "remove_canary blue"]
    assert world.models.tags("2")["modelrelease.status"] == "rolled_back"
    assert "bake failed" in world.models.tags("2")["modelrelease.reason"]
    assert world.models.aliases == {}  # never moved: the release was not over
    assert [n.notice for n in world.told][-1] is Notice.ROLLED_BACK


def test_a_bake_without_enough_live_traffic_promotes_and_says_so(
        baked: ModelEndpoint) -> None:
    world = world_of(baked, *[THIN] * 12)
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.PROMOTED
    assert result.reason == f"bake over, nothing judged: {THIN.reason}"


def test_an_abort_while_baking_restores_the_previous_version(baked: ModelEndpoint) -> None:
    world = world_of(baked)
    world.cluster.abort_when = (ReleasePhase.BAKING, "ana@laptop")
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.ROLLED_BACK
    assert result.reason == "rolled back: aborted by ana@laptop in phase Baking"
    assert world.status.aborted_by == "ana@laptop"
    assert world.status.primary == track("1") and world.cluster.primary_slot is Slot.GREEN
    assert [n.notice for n in world.told][-1] is Notice.ABORTED


def baking_2(endpoint: ModelEndpoint) -> World:
    """Version 2's release left while baking: promoted into blue, version 1 warm in green."""
    world = World(endpoint, FakeCluster(endpoint))
    in_flight(world, ReleasePhase.BAKING, "2", switched=True)
    # the record while baking: the new version is the primary, the previous the canary
    world.cluster.status = world.status.model_copy(update={"primary": track("2"),
                                                           "canary": track("1")})
    return world


def test_a_release_killed_while_baking_bakes_again_when_resumed(baked: ModelEndpoint) -> None:
    world = baking_2(baked)
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.PROMOTED
    assert phases(result) == [*[Phase.BAKING] * 12, Phase.PROMOTED]
    assert "resuming: baking again from the start" in "\n".join(world.lines)
    assert world.images.built == ["2"]  # the same image: the same release
    assert world.cluster.slots[Slot.GREEN].replicas == 0  # version 1 kept


def test_another_version_supersedes_a_bake_by_restoring_the_previous_one(
        baked: ModelEndpoint) -> None:
    world = baking_2(baked)
    result = world.release("3")
    assert result.outcome is ReleaseOutcome.PROMOTED
    assert history(world.status)[-2:] == [("2", ReleasePhase.ROLLED_BACK),
                                         ("3", ReleasePhase.PROMOTED)]
    assert world.models.tags("2")["modelrelease.status"] == "rolled_back"
    # version 1 came back in green before version 3 was canaried beside it
    assert world.cluster.changed()[:2] == ["promote green", "remove_canary blue"]
    assert world.status.primary == track("3")


def test_a_first_release_is_not_baked(baked: ModelEndpoint) -> None:
    world = World(baked, FakeCluster(baked))
    result = world.release("1")
    assert result.outcome is ReleaseOutcome.PROMOTED
    assert Phase.BAKING not in phases(result)
    assert world.evidence.windows == []
    assert ("ml/iris: a first release is not baked (spec.canary.bake): there is no previous "
            "version to go back to") in world.lines


def test_a_rollback_after_the_bake_scales_the_kept_version_up(baked: ModelEndpoint) -> None:
    world = world_of(baked)
    assert world.release("2").outcome is ReleaseOutcome.PROMOTED
    world.cluster.calls.clear()
    done = rollback_with(world.cluster, world.models, baked, None, "ana", ReleaseConfig(),
                         PriceTable(), world.lines.append)
    assert (done.version, done.warm) == ("1", False)  # kept at no replicas: not warm
    assert world.cluster.changed() == ["deploy_canary green", "promote green",
                                       "remove_canary blue"]
    assert world.status.primary == track("1")


class Asked:
    """A cluster that says ``by`` asked the release to stop, counting the questions."""

    def __init__(self, by: str | None) -> None:
        self.by = by
        self.asked = 0

    def abort_requested(self, release_id: str) -> str | None:
        self.asked += 1
        return self.by


@pytest.mark.parametrize(("by", "seconds", "asked"), [
    # a bake's wait between looks ends at the first second that sees an abort
    pytest.param("ana@laptop", 30.0, 1, id="ended-by-an-abort"),
    # asked each whole second while more than one is left; the rest slept out
    pytest.param(None, 1.2, 1, id="slept-out"),
    pytest.param(None, 0.5, 0, id="a-poll-asks-nothing"),
])
def test_a_wait_of_seconds_ends_on_an_abort(by: str | None, seconds: float,
                                            asked: int) -> None:
    cluster = Asked(by)
    run = SimpleNamespace(ports=SimpleNamespace(cluster=cluster), release_id="r-2")
    assert steps.wait(run, rollout.Wait(seconds)) is None  # type: ignore[arg-type]
    assert cluster.asked == asked
