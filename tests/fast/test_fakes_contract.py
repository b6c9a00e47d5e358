"""The fakes of ``tests/fakes.py``: the shared cluster contract, and each fake's own knobs.

``tests/contract.py`` is what the real ``KubeEndpoint`` does too; the rest pins down how
the knobs the release tests turn behave (a canary that cannot grow, a held lock, MLflow
down), so a release test's expectation rests on a known fake.
"""

from __future__ import annotations

import pytest

from modelrelease.domain.fault import drill_fault
from modelrelease.domain.manifests import Slot, Track
from modelrelease.domain.model import ModelUri
from modelrelease.domain.readiness import Readiness, RolloutState
from modelrelease.errors import InvalidInput, KubeApiError, MlflowError, ModelNotFound
from modelrelease.release.replica_router import ReplicaRatioRouter
from modelrelease.spec import Fault, ModelEndpoint, ModelEndpointStatus, ReleasePhase
from tests.contract import CLUSTER_CONTRACT, ClusterContract
from tests.fakes import FakeCluster, FakeImages, FakeModels, image_of

A, B, C = image_of("1"), image_of("2"), image_of("3")


class TestClusterContract:
    """``FakeCluster`` keeps the contract the real cluster keeps."""

    @pytest.mark.parametrize(
        "contract", [pytest.param(case, id=case.__name__.removeprefix("cluster_contract_"))
                     for case in CLUSTER_CONTRACT])
    def test_fake_cluster_keeps_the_contract(self, contract: ClusterContract,
                                             endpoint: ModelEndpoint) -> None:
        contract(FakeCluster(endpoint), A, B)


class TestFakeCluster:
    """The knobs of ``FakeCluster``, as the release tests rely on them."""

    def test_first_canary_goes_to_blue_and_promotion_switches_to_it(
            self, endpoint: ModelEndpoint) -> None:
        cluster = FakeCluster(endpoint)
        cluster.deploy_canary(A.image, "1", "r1", 2)
        assert cluster.slot_of(Track.CANARY) is Slot.BLUE
        readiness = cluster.promote(A.image, "1", "r1", 2, 60)
        assert readiness.state is RolloutState.READY
        assert cluster.primary_slot is Slot.BLUE
        assert cluster.changed() == ["deploy_canary blue", "promote blue"]

    @pytest.mark.parametrize(
        ("grow_fails", "canary_health", "reason"),
        [
            pytest.param("Insufficient nvidia.com/gpu", None,
                         "canary could not grow to 3 replica(s) for promotion: canary failed: "
                         "Insufficient nvidia.com/gpu", id="grow-fails"),
            pytest.param(None, Readiness(RolloutState.FAILED, "CrashLoopBackOff"),
                         "canary could not grow to 3 replica(s) for promotion: canary failed: "
                         "CrashLoopBackOff", id="canary-crashes"),
            pytest.param(None, Readiness(RolloutState.PROGRESSING, "0 of 3 available"),
                         "canary could not grow to 3 replica(s) for promotion: canary not "
                         "ready after 60s: 0 of 3 available", id="canary-never-ready"),
        ],
    )
    def test_promotion_that_cannot_grow_switches_nothing(
            self, endpoint: ModelEndpoint, grow_fails: str | None,
            canary_health: Readiness | None, reason: str) -> None:
        cluster = FakeCluster(endpoint)
        cluster.seed(Track.PRIMARY, A, "1")
        cluster.deploy_canary(B.image, "2", "r2", 1)
        cluster.grow_fails, cluster.canary_health = grow_fails, canary_health
        readiness = cluster.promote(B.image, "2", "r2", 3, 60)
        assert readiness == Readiness(RolloutState.FAILED, reason)
        assert cluster.primary_slot is Slot.GREEN
        assert cluster.serves(Track.PRIMARY, A.digest)

    def test_health_progresses_for_the_scripted_polls(self, endpoint: ModelEndpoint) -> None:
        cluster = FakeCluster(endpoint)
        cluster.deploy_canary(A.image, "1", "r1", 2)
        cluster.not_ready_polls[Track.CANARY] = 2
        states = [cluster.health(Track.CANARY).state for _ in range(3)]
        assert states == [RolloutState.PROGRESSING, RolloutState.PROGRESSING,
                          RolloutState.READY]

    def test_the_canary_carries_the_drill_fault_and_the_primary_never_does(
            self, endpoint: ModelEndpoint) -> None:
        fault = drill_fault(Fault.ERRORS)
        cluster = FakeCluster(endpoint, canary_fault=fault)
        cluster.deploy_canary(A.image, "1", "r1", 2)
        assert (canary := cluster.deployment(Track.CANARY)) is not None
        assert canary.fault == fault
        cluster.promote(A.image, "1", "r1", 2, 60)
        assert (primary := cluster.deployment(Track.PRIMARY)) is not None
        assert primary.fault is None

    def test_an_unpinned_image_is_refused(self, endpoint: ModelEndpoint) -> None:
        with pytest.raises(InvalidInput, match="not pinned by digest"):
            FakeCluster(endpoint).deploy_canary("127.0.0.1:5000/ml/iris:latest", "1", "r1", 1)

    def test_a_lock_held_by_another_is_not_taken(self, endpoint: ModelEndpoint) -> None:
        cluster = FakeCluster(endpoint)
        cluster.held_by_other = "other-release"
        with cluster.lock("mine", 30, 0.0) as got:
            assert not got
            assert cluster.holder is None

    def test_the_same_holder_takes_its_lock_again(self, endpoint: ModelEndpoint) -> None:
        cluster = FakeCluster(endpoint)
        with cluster.lock("mine", 30, 0.0) as first, cluster.lock("mine", 30, 0.0) as again:
            assert first and again
        assert cluster.holder is None

    def test_denied_permissions_are_a_403(self, endpoint: ModelEndpoint) -> None:
        cluster = FakeCluster(endpoint)
        cluster.denied = ("delete deployments",)
        with pytest.raises(KubeApiError, match="may not delete deployments") as caught:
            cluster.check_permissions()
        assert caught.value.status == 403

    def test_the_status_is_stored_validated(self, endpoint: ModelEndpoint) -> None:
        cluster = FakeCluster(endpoint)
        cluster.write_status(ModelEndpointStatus(phase=ReleasePhase.PROMOTED))
        read = cluster.read_status()
        assert read is not None and read.phase is ReleasePhase.PROMOTED
        assert read is not cluster.read_status()  # a copy, as from the API server

    @pytest.mark.parametrize(
        ("first_release", "primary_replicas", "weight", "expected"),
        [
            pytest.param(True, 0, 100, (2, 100.0), id="first-release-takes-min-replicas"),
            pytest.param(False, 2, 50, (2, 50.0), id="half-beside-two"),
            pytest.param(False, 4, 10, (1, 20.0), id="one-beside-four"),
        ],
    )
    def test_the_real_router_over_the_fake(self, endpoint: ModelEndpoint, first_release: bool,
                                           primary_replicas: int, weight: int,
                                           expected: tuple[int, float]) -> None:
        cluster = FakeCluster(endpoint)
        if primary_replicas:
            cluster.seed(Track.PRIMARY, A, "1", replicas=primary_replicas)
        cluster.deploy_canary(B.image, "2", "r2", 1)
        router = ReplicaRatioRouter(cluster, endpoint, B.image, "2", "r2", first_release)
        assert router.set_weight(weight) == expected
        assert (canary := cluster.deployment(Track.CANARY)) is not None
        assert canary.replicas == expected[0]


class TestFakeModelsAndImages:
    """``FakeModels`` and ``FakeImages``: what MLflow and the registry do for a release."""

    def test_tags_and_alias_are_recorded(self) -> None:
        models = FakeModels()
        models.tag(models.version("2"), {"modelrelease.status": "promoted"}, alias="production")
        models.tag(models.version("2"), {"modelrelease.release_id": "r2"})
        assert models.tags("2") == {"modelrelease.status": "promoted",
                                    "modelrelease.release_id": "r2"}
        assert models.resolve(ModelUri("iris-clf", alias="production")).version == "2"

    @pytest.mark.parametrize(
        ("down", "tag_failures", "calls_that_fail"),
        [
            pytest.param(True, 0, 3, id="down"),
            pytest.param(False, 2, 2, id="two-failures-then-up"),
        ],
    )
    def test_mlflow_down_is_a_retriable_error(self, down: bool, tag_failures: int,
                                              calls_that_fail: int) -> None:
        models = FakeModels(down=down, tag_failures=tag_failures)
        failed = 0
        for _ in range(3):
            try:
                models.tag(models.version("1"), {"modelrelease.status": "promoted"})
            except MlflowError as exc:
                assert exc.retriable
                failed += 1
        assert failed == calls_that_fail

    def test_unknown_versions_and_aliases_are_not_found(self) -> None:
        models = FakeModels()
        with pytest.raises(ModelNotFound):
            models.resolve(ModelUri("iris-clf", version="9"))
        with pytest.raises(ModelNotFound):
            models.resolve(ModelUri("iris-clf", alias="champion"))

    def test_files_without_an_input_example(self) -> None:
        models = FakeModels(without_example=frozenset({"2"}))
        assert models.files(models.version("1")).serving_example is not None
        assert models.files(models.version("2")).serving_example is None

    def test_images_are_pinned_per_version_and_reused(self) -> None:
        images, models = FakeImages(), FakeModels()
        first = images.image_for(models.version("1"))
        again = images.image_for(models.version("1"))
        other = images.image_for(models.version("2"))
        assert first.digest == again.digest == A.digest != other.digest
        assert first.image.endswith(f"@{first.digest}")
        assert (first.reused, again.reused) == (False, True)
        assert C.digest not in (first.digest, other.digest)
