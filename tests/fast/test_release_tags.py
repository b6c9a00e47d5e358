"""``promotion.tags``: whether a release tags the version in MLflow (the alias moves anyway).

On by default (every other fast test sees the tags); off, a release sets no
``modelrelease.*`` tag on any version it promotes or rolls back, and the promotion alias
still moves to a promoted version. The status's ``MlflowTagged`` condition says so.
"""

from __future__ import annotations

from modelrelease.domain.rollout import ReleaseOutcome
from modelrelease.release.steps import TAGGED
from modelrelease.spec import parse_endpoint
from tests.fakes import FAIL, FakeCluster, FakeEvidence
from tests.fast.test_release_loop import World, promoted
from tests.unit.test_spec import doc


def untagged(evidence: FakeEvidence | None = None) -> World:
    endpoint = parse_endpoint(doc(**{"spec.promotion": {"alias": "production",
                                                        "tags": False}}))
    world = World(endpoint, FakeCluster(endpoint), evidence=evidence or FakeEvidence())
    promoted(world)
    return world


def test_without_tags_a_promotion_only_moves_the_alias() -> None:
    world = untagged()
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.PROMOTED
    assert [(t.version, t.tags, t.alias) for t in world.models.tagged] == [
        ("2", {}, "production")]
    (condition,) = [c for c in world.status.conditions if c.type == TAGGED]
    assert (condition.status, condition.reason) == ("True", "TagsOff")
    assert "alias production moved, not tagged (promotion.tags: false)" in condition.message


def test_without_tags_a_rollback_touches_nothing_in_mlflow() -> None:
    world = untagged(FakeEvidence([FAIL]))
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.ROLLED_BACK
    assert world.models.tagged == []
    (condition,) = [c for c in world.status.conditions if c.type == TAGGED]
    assert condition.message == "version 2 rolled_back; not tagged (promotion.tags: false)"
