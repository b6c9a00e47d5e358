"""The cluster contract (``tests/contract.py``) kept by the real ``KubeEndpoint``.

The fast tier runs whole releases on ``tests.fakes.FakeCluster``; the same contract runs
here against the real adapter on the local stack (API server, real node, real images of
two iris versions built and pushed once), one fresh endpoint per case. A fake that
drifts from the real cluster fails one side of the contract.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelrelease.adapters.kube import KubeCluster
from modelrelease.adapters.mlflow_registry import MlflowRegistry
from modelrelease.domain.model import ModelUri
from modelrelease.release.images import RegistryImages
from modelrelease.release.kube_endpoint import KubeEndpoint
from modelrelease.release.ports import Image
from modelrelease.spec import load_endpoint
from modelrelease_localstack.demo_model import register_iris_model
from modelrelease_localstack.stack import Stack
from tests.contract import CLUSTER_CONTRACT, ClusterContract
from tests.e2e.helpers import make_endpoint

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def images(stack: Stack, crd: None, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Image, Image]]:
    """Two real serving images (iris versions 1 and 2), built and pushed once."""
    made = make_endpoint(stack, tmp_path_factory.mktemp("contract-images"))
    tracking = str(made.settings.mlflow.tracking_uri)
    register_iris_model(tracking, made.model, c=1.0)
    register_iris_model(tracking, made.model, c=0.3)
    registry = MlflowRegistry(made.settings.mlflow)
    store = RegistryImages(load_endpoint(made.file), made.settings, registry)
    built = tuple(store.image_for(registry.resolve(ModelUri(made.model, version=v)))
                  for v in ("1", "2"))
    yield built[0], built[1]
    made.core.delete_namespace(made.namespace)


@pytest.mark.parametrize(
    "contract", [pytest.param(case, id=case.__name__.removeprefix("cluster_contract_"))
                 for case in CLUSTER_CONTRACT])
def test_kube_endpoint_keeps_the_contract(stack: Stack, crd: None, tmp_path: Path,
                                          images: tuple[Image, Image],
                                          contract: ClusterContract) -> None:
    made = make_endpoint(stack, tmp_path)
    cluster = KubeCluster(made.settings.kube)
    try:
        contract(KubeEndpoint(load_endpoint(made.file), cluster), *images)
    finally:
        cluster.close()
        made.core.delete_namespace(made.namespace)
