"""The fast tier: whole releases on in-memory fakes, no cluster, no MLflow, no sleeping.

Every test here runs in milliseconds and needs no service: ``pytest tests/fast``.
"""

from __future__ import annotations

import pytest

from modelrelease.spec import ModelEndpoint, parse_endpoint
from tests.fakes import FakeCluster
from tests.fast.test_release_loop import World
from tests.unit.test_spec import VALID


@pytest.fixture
def endpoint() -> ModelEndpoint:
    """``ml/iris``: two canary steps (10%, 50%), two to ten replicas, one GPU each."""
    return parse_endpoint(VALID)


@pytest.fixture
def world(endpoint: ModelEndpoint) -> World:
    """A fresh endpoint: no record, no Deployment, MLflow up, every check passing."""
    return World(endpoint, FakeCluster(endpoint))
